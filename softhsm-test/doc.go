// Package softhsmtest makes throwaway SoftHSM tokens for tests, and its
// softhsm-token.sh does the same for `make demo` and e2e scripts. Only tests
// and the demo import it.
//
// A test gets its own token with [New] (or [Create] where there is no
// testing.TB):
//
//	tk := softhsmtest.New(t, "validator")   // unique label per test process
//	uri := tk.URI("consensus")              // pkcs11:token=validator;object=consensus?module-path=...&pin-source=file:...
//	cmd.Env = append(os.Environ(), tk.Env()...) // for a child signerd
//
// The module is $SIGNERD_SOFTHSM2_LIB, default /usr/lib/softhsm/libsofthsm2.so.
// If it is missing, New calls testenv.Unavailable: the test skips locally and
// fails under CI=true. Use [Run] from TestMain to remove the process's token
// folder afterwards.
//
// # How SoftHSM 2.6.1 sees tokens (measured)
//
//   - SoftHSM reads SOFTHSM2_CONF, and with it the token folder, once: in
//     C_Initialize, which is process-wide and happens once per process.
//   - A token that another process initialises afterwards (softhsm2-util
//     --init-token, same config) stays invisible to a process that already
//     initialised SoftHSM, even on a fresh C_GetSlotList(true) or
//     C_GetSlotList(false); only C_Finalize + C_Initialize shows it
//     (TestOtherProcessTokenInvisible pins this down).
//   - A token initialised in-process with C_InitToken on the free slot is
//     visible at once, and SoftHSM adds a new free slot right away, so any
//     number of tokens can be made this way (about 7 ms each, against about
//     60 ms for a softhsm2-util run).
//   - Objects that another process adds to an already visible token do show
//     up (SoftHSM re-reads a token's objects when its files change).
//   - Slot IDs differ between processes and initialisations (in-process
//     C_InitToken keeps the small slot number; a fresh C_Initialize derives
//     the slot ID from the serial), so URIs select tokens by label.
//
// # Design
//
// Hence one SoftHSM config and token folder per test process, made on first
// use (sync.Once) with SOFTHSM2_CONF set in the environment before the
// process's first C_Initialize; every token is created in-process with
// C_InitToken, each test with its own label, so tests of one package run in
// parallel and packages (separate processes) never share a folder. The
// fixture keeps its own module handle initialised for the life of the
// process and never finalises it; package hsm therefore meets
// CKR_CRYPTOKI_ALREADY_INITIALIZED and never finalises SoftHSM under another
// test. The fixture refuses to start if SoftHSM was initialised in the
// process before it (that initialisation read some other config). Child
// processes (signerd in e2e tests) see every token made before they start,
// through [Token.Env].
package softhsmtest
