package bench

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // reversed: Summarize must sort
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	d := Summarize(s)
	want := Dist{N: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if d != want {
		t.Fatalf("Summarize = %+v, want %+v", d, want)
	}
	if s[0] != 100*time.Millisecond {
		t.Fatal("Summarize modified its input")
	}
	if (Summarize(nil) != Dist{}) {
		t.Fatal("Summarize(nil) is not zero")
	}
}

func TestPercentile(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {10, 1}, {50, 5}, {51, 6}, {99, 10}, {100, 10}} {
		if got := Percentile(s, tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	m, r := Slope(xs, []float64{1, 3, 5, 7, 9})
	if math.Abs(m-2) > 1e-9 || math.Abs(r-1) > 1e-9 {
		t.Fatalf("Slope = %v, r = %v; want 2, 1", m, r)
	}
	m, r = Slope(xs, []float64{5, 5, 5, 5, 5})
	if m != 0 || r != 0 {
		t.Fatalf("flat Slope = %v, r = %v; want 0, 0", m, r)
	}
	if m, _ := Slope([]float64{1}, []float64{1}); m != 0 {
		t.Fatal("one point must give slope 0")
	}
}
