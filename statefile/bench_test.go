package statefile

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchDir is where the benchmarks write: $SIGNERD_BENCH_DIR if set (say,
// a folder on the disk the state files will live on), else the default
// temp dir. The filesystem type is logged with the results.
func benchDir(b *testing.B) string {
	dir := b.TempDir()
	if base := os.Getenv("SIGNERD_BENCH_DIR"); base != "" {
		var err error
		if dir, err = os.MkdirTemp(base, "statefile-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	b.Logf("writing in %s (%s)", dir, fsType(dir))
	return dir
}

func fsType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err.Error()
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("filesystem magic %#x", st.Type)
}

// reportLatency adds p50/p90/p99 of per-operation times (µs) to the
// benchmark's output.
func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / 1e3 }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.90), "p90-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkSave measures the signing path's write: one 4 KiB pwrite over
// the older slot plus one fdatasync.
func BenchmarkSave(b *testing.B) {
	path := filepath.Join(benchDir(b), "s.state")
	if err := Create(path, testChain, Record{}, false); err != nil {
		b.Fatal(err)
	}
	f, err := Open(path, testChain)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	recs := make([]Record, b.N)
	h := HRS{}
	for i := range recs {
		h = nextHRS(h)
		recs[i] = voteRecord(h, msg{Block: "A", Time: t0, POLRound: -1})
	}
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := f.Save(recs[i]); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkCreate measures the atomic path, for comparison: lock, temp file
// in the same folder, write 8 KiB, fsync, rename, fsync of the folder.
func BenchmarkCreate(b *testing.B) {
	path := filepath.Join(benchDir(b), "s.state")
	r := voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0})
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := Create(path, testChain, r, true); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkWriteAtomic measures the bare rename path Create uses (temp,
// write 8 KiB, fsync, rename, folder fsync) without the lock, checks and
// stale-temp scan: the like-for-like comparison with BenchmarkSave.
func BenchmarkWriteAtomic(b *testing.B) {
	path := filepath.Join(benchDir(b), "s.state")
	data := make([]byte, FileSize)
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := writeAtomic(path, data); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkDecide measures the decision alone: a fresh position, and a
// repeated one whose sign bytes differ only in the timestamp (two proto
// decodes).
func BenchmarkDecide(b *testing.B) {
	last := voteRecord(HRS{10, 0, StepPrevote}, msg{Block: "A", Time: t0})
	fresh := signBytes(HRS{10, 0, StepPrecommit}, msg{Block: "A", Time: t0})
	later := signBytes(last.HRS, msg{Block: "A", Time: t0.Add(time.Second)})
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if d, err := last.Decide(HRS{10, 0, StepPrecommit}, fresh); err != nil || d.Action != SignFresh {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("timestamp-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if d, err := last.Decide(last.HRS, later); err != nil || d.Action != ResignWithStoredTimestamp {
				b.Fatal(d, err)
			}
		}
	})
}
