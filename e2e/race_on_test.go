//go:build race

package e2e

// raceEnabled: the tests run under -race, so the signerd binary they build
// runs under the race detector too (and shares the race build cache).
const raceEnabled = true
