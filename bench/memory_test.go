package bench

import (
	"context"
	"os"
	"testing"
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
