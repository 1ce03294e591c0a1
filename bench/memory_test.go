package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestRSSOfSelf(t *testing.T) {
	rss, hwm, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Fatalf("RSS = %d, HWM = %d", rss, hwm)
	}
	if _, _, err := RSS(-1); err == nil {
		t.Fatal("RSS of pid -1 succeeded")
	}
}

func TestMeasureMemoryInProcess(t *testing.T) {
	m, err := MeasureMemory(context.Background(), FilePVInProcess{}, t.TempDir(), 400, 100, HeapAfterGC)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Samples) != 4 || m.Samples[3].Sigs != 400 || m.Final <= 0 {
		t.Fatalf("unexpected samples %+v", m.Samples)
	}
	if _, err := MeasureMemory(context.Background(), FilePVInProcess{}, t.TempDir(), 4, 4, nil); err == nil {
		t.Fatal("in-process target without a sample function accepted")
	}
}

func TestMemorySlope(t *testing.T) {
	m := &MemoryResult{Samples: []MemSample{{100, 5000}, {200, 1000}, {300, 1100}, {400, 1200}}}
	s, r := m.Slope() // first sample skipped
	if s != 1 || r < 0.999 {
		t.Fatalf("Slope = %v, %v; want 1, 1", s, r)
	}
	if g := m.Growth(); g != 400 {
		t.Fatalf("Growth = %v, want 400", g)
	}
}

func TestProcessCPU(t *testing.T) {
	c0, err := ProcessCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) { // burn CPU so the counter moves
		x++
	}
	c1, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c1 <= c0 || x == 0 {
		t.Fatalf("CPU time did not advance: %v then %v", c0, c1)
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Fatal("ProcessCPU(-1) succeeded")
	}
}
