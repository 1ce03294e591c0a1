// Package statefile owns signerd's double-sign record on disk: the
// height/round/step types ([HRS], [Step]), CometBFT FilePV's decision rules
// ([Record.Decide]), the durable write ([File.Save]), the file lock, the
// atomic creation path ([Create]) and FilePV state import/export
// ([ParseFilePV], [FormatFilePV]). It signs nothing and talks to no network.
//
// # Invariants
//
//   - A record is durable before [File.Save] returns nil; [File.Last]
//     changes only after that. The signer releases a signature only after
//     Save of its record returned nil, so every released signature's record
//     (or a later one) is on disk.
//   - The recorded position never moves backwards and never changes sign
//     bytes at one HRS: Save refuses a lower HRS and other bytes at the same
//     HRS, so a later record always covers an earlier one.
//   - Missing, empty, corrupt, foreign-chain and foreign-format files are
//     refused with a [*FileError] naming the file and the kind ([ErrMissing],
//     [ErrEmpty], [ErrCorrupt], [ErrChainMismatch], [ErrVersion]). Nothing
//     here ever falls back to height 0; only [Create] makes a state.
//   - One process holds a state file at a time ([Open] takes an flock on
//     "<path>.lock"; [Create] takes it too, so re-initialising cannot pull
//     the file from under a running signer).
//   - Nothing panics on any input; undecodable bytes are errors.
//
// # Decision rules
//
// [Record.Decide] is FilePV's CheckHRS plus its same-HRS handling
// (privval/file.go in CometBFT v0.38): a lower height, round or step is a
// *[RegressionError]; the same HRS with identical sign bytes is
// [ResignSame]; the same HRS with sign bytes whose canonical vote or proposal
// differs only in the timestamp is [ResignWithStoredTimestamp], which
// answers with the recorded bytes' signature and the recorded timestamp; any
// other difference at the same HRS is a *[ConflictError]; the same HRS with
// no recorded sign bytes is [ErrNoSignBytes]; anything higher is
// [SignFresh]. Vote-extension signatures are not covered: they are always
// signed fresh and never stored (as FilePV does).
//
// Decide is stricter than FilePV where FilePV never meets the input: sign
// bytes must be exactly one canonical message of the request's kind, height
// and round, and recorded bytes that do not decode are an error, not a panic.
// Ed25519 is deterministic, so the signing path stores sign bytes and no
// signature: signing the recorded bytes again yields the released signature.
//
// # File format
//
// One file per chain, exactly 8192 bytes: two 4096-byte slots. A slot is
// one JSON line, a checksum line and padding:
//
//	{"format":"signerd-state/1","chain_id":"test-chain","seq":"1","height":"120","round":0,"step":2,"signbytes":"690801117800…636861696E"}
//	crc32c:780c7001
//	<spaces up to byte 4095, which is a newline>
//
// (testdata/state holds complete examples.)
//
// seq and height are decimal strings (int64/uint64 do not survive every JSON
// reader); round and step are numbers (steps: 0 none, 1 propose, 2 prevote,
// 3 precommit, as in FilePV); signbytes are upper-case hex; signature,
// present only when imported, is base64. The checksum is CRC-32C
// (Castagnoli) of the JSON line's bytes, in lower-case hex. Loading is
// strict: the line must be byte for byte what this package writes for the
// decoded values (no unknown, duplicate or re-cased keys, no other number
// spellings), and the padding must be intact.
//
// # Write path and why
//
// [File.Save] encodes the record into a reused 4096-byte buffer, writes it
// with one pwrite over the slot that does not hold the current record, calls
// fdatasync once, and only then updates memory. There is no rename and no
// folder sync: the file's size and blocks never change after [Create], so
// fdatasync (which flushes the data and any metadata needed to read it back)
// is the only sync required. Measured on the development machine, an
// in-place 4 KiB overwrite plus fdatasync has a p50 of about 218 µs against
// about 900 µs for temp file + fsync + rename + folder fsync, and the
// performance budget is one sync per signature; the signer overlaps Save
// with the HSM signature and releases nothing until both finish. (The
// package benchmarks BenchmarkSave and BenchmarkCreate measure both paths.)
//
// [Create] writes all 8192 bytes through the atomic path: temp file in the
// same folder, write, chmod 0600, fsync, rename over the target, fsync of
// the folder. It refuses to replace an existing file unless told to. A temp
// file left by a crash is ignored by loading and removed by the next Open or
// Create.
//
// # Crash safety
//
// Load validates both slots (checksum, strict JSON, format, chain id, field
// ranges, sign bytes) and takes the valid slot with the higher seq. A slot
// whose checksum fails or whose padding is damaged is "torn", the expected
// result of a crash during Save; it is reported in [Info] and skipped. A
// slot whose checksum holds but whose content is invalid cannot come from a
// torn write, so it makes the whole file [ErrCorrupt], as do two torn slots.
//
// Why a torn slot cannot lose a released signature's record: let R be the
// record of a released signature. Its Save returned, so R was written to
// slot s with seq n and synced. The next Save writes slot 1-s, never s; a
// crash during it can damage only slot 1-s, whose record had not been
// acknowledged, so its signature was never released, and loading falls back
// to slot s and R. Only after a Save into slot 1-s has returned (record R'
// with seq n+1, synced) can slot s be overwritten again; from then on R' is
// the record to keep, and Save's refusals guarantee R' ≥ R with identical
// sign bytes if the HRS is equal, so R' forbids everything R forbade. A
// failed write or sync marks the File failed and refuses every later Save
// until it is reopened, because after a failed fdatasync the kernel may
// have dropped the page it could not write. The kill -9 test covers process
// crashes; power-loss safety rests on fdatasync and the checksums.
package statefile
