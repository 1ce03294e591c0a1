package hsm_test

import (
	"crypto"
	"crypto/ed25519"
	"fmt"

	"github.com/signerd/signerd/hsm"
	softhsmtest "github.com/signerd/signerd/softhsm-test"
)

// Open a key in a (SoftHSM) token by its URI and sign with it as a
// crypto.Signer. In production the URI comes from signerd.toml, e.g.
// pkcs11:token=validator;object=consensus?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:hsm.pin
func ExampleOpen() {
	tk, err := softhsmtest.Create("example") // a throwaway token
	if err != nil {
		fmt.Println(err)
		return
	}
	u, err := hsm.ParseURI(tk.URI("consensus"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := hsm.Generate(u, nil); err != nil {
		fmt.Println(err)
		return
	}

	key, err := hsm.Open(u, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer key.Close()

	msg := []byte("sign bytes")
	sig, err := key.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(sig), ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig))
	// Output: 64 true
}
