module github.com/signerd/signerd

go 1.24.0

require (
	github.com/cometbft/cometbft v0.38.26 // indirect
	github.com/cosmos/gogoproto v1.7.2 // indirect
	github.com/creachadair/tomledit v0.0.28 // indirect
	github.com/miekg/pkcs11 v1.1.2 // indirect
	github.com/pelletier/go-toml/v2 v2.4.3 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
