package bench

import (
	"fmt"
	"strings"
	"time"
)

// Floor is one run's bare measurements on this machine.
type Floor struct {
	HSM   Dist // raw C_SignInit + C_Sign (CKM_EDDSA) on SoftHSM
	Fsync Dist // 4 KiB in-place pwrite + fdatasync in the state folder
	// Parallel is a bare signature and a bare state write run concurrently
	// (MeasureParallelFloor): the overlap this machine actually gives.
	Parallel Dist
}

// P50 is the floor as the issue defines it: max(bare HSM p50, bare fsync p50).
func (f Floor) P50() time.Duration { return max(f.HSM.P50, f.Fsync.P50) }

// LatencyRun is one run of the round-trip section: the floor and every
// target, measured back to back in one process.
type LatencyRun struct {
	Floor   Floor
	Overlap *Overlap                  // signerd's SoftHSM key and state file, in-process
	Results map[string]*LatencyResult // by target name
}

// Report is everything one `make bench` produced.
type Report struct {
	Date    time.Time
	Command string
	Machine Machine
	Notes   []string

	Heights int // measured heights per latency run

	Latency []LatencyRun
	// Multi holds one set per target; MultiChains the chain counts measured.
	MultiChains []int
	Multi       []MultiSet
	// HSMCeiling[i] are bare SoftHSM signatures/s with MultiChains[i]
	// threads in one process, per run.
	HSMCeiling  [][]float64
	Chain       map[ChainSetup][]*ChainResult
	ChainWindow time.Duration
	RSS         *MemoryResult
	Heap        *MemoryResult
}

// MultiSet is one target's multi-chain runs: Runs[i] are the runs with
// MultiChains[i] chains.
type MultiSet struct {
	Target string
	Runs   [][]*MultiResult
}

// Target names as the harness registers them.
const (
	NameFilePV  = "FilePV"
	NameFile    = "signerd+file"
	NameSoftHSM = "signerd+softhsm"
)

// Check is one issue-4 target evaluated on this report.
type Check struct {
	Name     string
	Measured string
	Limit    string
	Margin   string
	Pass     bool
}

// medianOf applies f to every latency run that has target name and returns
// the median (0, false when none has it).
func (r *Report) medianOf(f func(run LatencyRun) (float64, bool)) (float64, []float64, bool) {
	var xs []float64
	for _, run := range r.Latency {
		if v, ok := f(run); ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0, nil, false
	}
	return Median(xs), xs, true
}

func ms(x float64) float64 { return x / float64(time.Millisecond) }

func fmtRuns(xs []float64, f string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf(f, x)
	}
	return strings.Join(s, ", ")
}

type pick func(*LatencyResult) Dist

var (
	pickPrevote   pick = func(l *LatencyResult) Dist { return l.Prevote }
	pickPrecommit pick = func(l *LatencyResult) Dist { return l.Precommit }
	pickProposal  pick = func(l *LatencyResult) Dist { return l.Proposal }
)

// Checks evaluates every target the report has data for.
func (r *Report) Checks() []Check {
	var cs []Check
	// file: key SignVote p50 ≤ 0.8 × FilePV p50 (ratio per run, median).
	for _, v := range []struct {
		what string
		p    pick
	}{{"prevote", pickPrevote}, {"precommit", pickPrecommit}} {
		med, runs, ok := r.medianOf(func(run LatencyRun) (float64, bool) {
			a, b := run.Results[NameFile], run.Results[NameFilePV]
			if a == nil || b == nil {
				return 0, false
			}
			return float64(v.p(a).P50) / float64(v.p(b).P50), true
		})
		if ok {
			cs = append(cs, Check{
				Name:     fmt.Sprintf("file: key SignVote (%s) p50 ≤ 0.8 × FilePV", v.what),
				Measured: fmt.Sprintf("%.2f × (runs: %s)", med, fmtRuns(runs, "%.2f")),
				Limit:    "0.80 ×", Margin: fmt.Sprintf("%+.2f ×", 0.8-med), Pass: med <= 0.8,
			})
		}
	}
	// SoftHSM SignVote p50 ≤ floor + 0.15 ms.
	for _, v := range []struct {
		what string
		p    pick
	}{{"prevote", pickPrevote}, {"precommit, +extension signature", pickPrecommit}} {
		med, runs, ok := r.medianOf(func(run LatencyRun) (float64, bool) {
			a := run.Results[NameSoftHSM]
			if a == nil || run.Floor.HSM.N == 0 {
				return 0, false
			}
			return float64(v.p(a).P50 - run.Floor.P50()), true // excess over the floor, per run
		})
		if ok {
			fl, _, _ := r.medianOf(func(run LatencyRun) (float64, bool) { return float64(run.Floor.P50()), run.Floor.HSM.N > 0 })
			par := ""
			if pf, _, ok := r.medianOf(func(run LatencyRun) (float64, bool) {
				a := run.Results[NameSoftHSM]
				return float64(v.p(a).P50 - run.Floor.Parallel.P50), a != nil && run.Floor.Parallel.N > 0
			}); ok {
				par = fmt.Sprintf("; over the measured sign ‖ fsync floor: %+.3f ms", ms(pf))
			}
			cs = append(cs, Check{
				Name:     fmt.Sprintf("SoftHSM SignVote (%s) p50 ≤ floor + 0.15 ms", v.what),
				Measured: fmt.Sprintf("floor %.3f + %.3f ms (excess per run: %s%s)", ms(fl), ms(med), fmtRuns(scale(runs, 1/float64(time.Millisecond)), "%.3f"), par),
				Limit:    "floor + 0.150 ms", Margin: fmt.Sprintf("%+.3f ms", 0.15-ms(med)), Pass: ms(med) <= 0.15,
			})
		}
	}
	// p99 ≤ 2 ms for both keys (worst request type).
	for _, name := range []string{NameFile, NameSoftHSM} {
		med, runs, ok := r.medianOf(func(run LatencyRun) (float64, bool) {
			a := run.Results[name]
			if a == nil {
				return 0, false
			}
			return float64(max(a.Prevote.P99, a.Precommit.P99, a.Proposal.P99)), true
		})
		if ok {
			cs = append(cs, Check{
				Name:     fmt.Sprintf("%s p99 ≤ 2 ms (worst of proposal, prevote, precommit)", name),
				Measured: fmt.Sprintf("%.3f ms (runs: %s)", ms(med), fmtRuns(scale(runs, 1/float64(time.Millisecond)), "%.3f")),
				Limit:    "2.000 ms", Margin: fmt.Sprintf("%+.3f ms", 2-ms(med)), Pass: ms(med) <= 2,
			})
		}
	}
	// Chain blocks/s ratios.
	for _, v := range []struct {
		setup ChainSetup
		min   float64
	}{{ChainSignerdSoftHSM, 0.85}, {ChainSignerdFile, 0.95}} {
		a, b := r.Chain[v.setup], r.Chain[ChainFilePV]
		n := min(len(a), len(b))
		if n == 0 {
			continue
		}
		var ratios []float64
		for i := 0; i < n; i++ {
			ratios = append(ratios, a[i].BlocksPerSec()/b[i].BlocksPerSec())
		}
		med := Median(ratios)
		cs = append(cs, Check{
			Name:     fmt.Sprintf("chain blocks/s %s ≥ %.2f × in-process FilePV", v.setup, v.min),
			Measured: fmt.Sprintf("%.3f × (runs: %s)", med, fmtRuns(ratios, "%.3f")),
			Limit:    fmt.Sprintf("%.2f ×", v.min), Margin: fmt.Sprintf("%+.3f ×", med-v.min), Pass: med >= v.min,
		})
	}
	// 4 chains ≥ 1.7 × 1 chain.
	if i1, i4 := indexOf(r.MultiChains, 1), indexOf(r.MultiChains, 4); i1 >= 0 && i4 >= 0 {
		for _, set := range r.Multi {
			n := min(len(set.Runs[i1]), len(set.Runs[i4]))
			var ratios []float64
			for i := 0; i < n; i++ {
				ratios = append(ratios, set.Runs[i4][i].SigsPerSec()/set.Runs[i1][i].SigsPerSec())
			}
			if n == 0 {
				continue
			}
			med := Median(ratios)
			cs = append(cs, Check{
				Name:     fmt.Sprintf("4 chains ≥ 1.7 × signatures/s of 1 chain (%s, %d cores)", set.Target, r.Machine.Cores),
				Measured: fmt.Sprintf("%.2f × (runs: %s)", med, fmtRuns(ratios, "%.2f")),
				Limit:    "1.70 ×", Margin: fmt.Sprintf("%+.2f ×", med-1.7), Pass: med >= 1.7,
			})
		}
	}
	if m := r.RSS; m != nil {
		mb := float64(m.Final) / (1 << 20)
		cs = append(cs, Check{
			Name:     fmt.Sprintf("RSS after %d signatures < 40 MB (%s)", lastSigs(m), m.Target),
			Measured: fmt.Sprintf("%.1f MiB (peak %.1f MiB)", mb, float64(m.Peak)/(1<<20)),
			Limit:    "40 MiB", Margin: fmt.Sprintf("%+.1f MiB", 40-mb), Pass: mb < 40,
		})
	}
	if m := r.Heap; m != nil {
		s, rr := m.Slope()
		g := m.Growth()
		const limit = 512 << 10
		cs = append(cs, Check{
			Name:     fmt.Sprintf("no heap growth trend over %d signatures (%s, in-process)", lastSigs(m), m.Target),
			Measured: fmt.Sprintf("fitted growth %+.0f KiB (%.3f B/signature, r = %.2f)", g/1024, s, rr),
			Limit:    "< 512 KiB over the run", Margin: fmt.Sprintf("%+.0f KiB", (limit-g)/1024), Pass: g < limit,
		})
	}
	return cs
}

func lastSigs(m *MemoryResult) int {
	if len(m.Samples) == 0 {
		return 0
	}
	return m.Samples[len(m.Samples)-1].Sigs
}

func scale(xs []float64, f float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * f
	}
	return out
}

func indexOf(xs []int, v int) int {
	for i, x := range xs {
		if x == v {
			return i
		}
	}
	return -1
}

// medianDist is the per-statistic median of a target's distributions over
// the runs.
func (r *Report) medianDist(name string, p pick) (Dist, bool) {
	var p50, p99, mx []time.Duration
	n := 0
	for _, run := range r.Latency {
		if l := run.Results[name]; l != nil {
			d := p(l)
			p50, p99, mx = append(p50, d.P50), append(p99, d.P99), append(mx, d.Max)
			n += d.N
		}
	}
	if len(p50) == 0 {
		return Dist{}, false
	}
	return Dist{N: n, P50: MedianDuration(p50), P99: MedianDuration(p99), Max: MedianDuration(mx)}, true
}

// Markdown renders the whole report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# signerd benchmark results\n\n")
	fmt.Fprintf(&b, "Date: %s. Reproduce: `%s`.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command)
	b.WriteString("## Machine\n\n")
	b.WriteString(r.Machine.Markdown())
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(r.Latency) > 0 {
		r.latencyMarkdown(&b)
	}
	if len(r.Chain) > 0 {
		r.chainMarkdown(&b)
	}
	if len(r.Multi) > 0 {
		r.multiMarkdown(&b)
	}
	if r.RSS != nil || r.Heap != nil {
		b.WriteString("\n## Memory\n\n| measurement | signatures | final | peak | fitted slope | fitted growth over run |\n|---|---:|---:|---:|---:|---:|\n")
		for _, m := range []*MemoryResult{r.RSS, r.Heap} {
			if m == nil {
				continue
			}
			s, rr := m.Slope()
			fmt.Fprintf(&b, "| %s, %s | %d | %.1f MiB | %.1f MiB | %.3f B/signature (r = %.2f) | %+.0f KiB |\n",
				m.What, m.Target, lastSigs(m), float64(m.Final)/(1<<20), float64(m.Peak)/(1<<20), s, rr, m.Growth()/1024)
		}
	}
	b.WriteString("\n## Targets\n\n| target | measured (median of runs) | limit | margin | result |\n|---|---|---|---|---|\n")
	for _, c := range r.Checks() {
		res := "**MISS**"
		if c.Pass {
			res = "PASS"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.Name, c.Measured, c.Limit, c.Margin, res)
	}
	return b.String()
}

func (r *Report) latencyMarkdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Floor and sign round trips\n\n%d run(s); each run measures the floor and every target back to back, %d heights per target (one SignProposal, one prevote and one precommit per height, rising heights, every signature verified). Figures are per-statistic medians over the runs; ratios are computed within each run, then the median is taken. floor = max(bare HSM sign p50, bare fsync p50).\n\n",
		len(r.Latency), r.Heights)
	b.WriteString("| measurement | n | p50 ms | p99 ms | max ms | p50 / FilePV | p50 / floor |\n|---|---:|---:|---:|---:|---:|---:|\n")
	var hsm, fsync, floor []time.Duration
	var hp99, fp99, hmax, fmax []time.Duration
	n1, n2 := 0, 0
	for _, run := range r.Latency {
		if run.Floor.HSM.N == 0 {
			continue
		}
		hsm, fsync, floor = append(hsm, run.Floor.HSM.P50), append(fsync, run.Floor.Fsync.P50), append(floor, run.Floor.P50())
		hp99, fp99 = append(hp99, run.Floor.HSM.P99), append(fp99, run.Floor.Fsync.P99)
		hmax, fmax = append(hmax, run.Floor.HSM.Max), append(fmax, run.Floor.Fsync.Max)
		n1 += run.Floor.HSM.N
		n2 += run.Floor.Fsync.N
	}
	if len(hsm) > 0 {
		fmt.Fprintf(b, "| bare SoftHSM Ed25519 sign (C_SignInit+C_Sign, CKM_EDDSA) | %d | %s | %s | %s | | |\n", n1, Ms(MedianDuration(hsm)), Ms(MedianDuration(hp99)), Ms(MedianDuration(hmax)))
		fmt.Fprintf(b, "| bare fsync (4 KiB in-place pwrite + fdatasync, state folder) | %d | %s | %s | %s | | |\n", n2, Ms(MedianDuration(fsync)), Ms(MedianDuration(fp99)), Ms(MedianDuration(fmax)))
		fmt.Fprintf(b, "| **floor** = max(HSM p50, fsync p50) | | %s | | | | |\n", Ms(MedianDuration(floor)))
	}
	var par, pp99, pmax []time.Duration
	np := 0
	for _, run := range r.Latency {
		if d := run.Floor.Parallel; d.N > 0 {
			par, pp99, pmax, np = append(par, d.P50), append(pp99, d.P99), append(pmax, d.Max), np+d.N
		}
	}
	if len(par) > 0 {
		fmt.Fprintf(b, "| bare HSM sign ‖ bare fsync on two threads (the overlap this machine gives; perfect = floor, none = sum) | %d | %s | %s | %s | | |\n",
			np, Ms(MedianDuration(par)), Ms(MedianDuration(pp99)), Ms(MedianDuration(pmax)))
	}
	ov := func(label string, f func(*Overlap) Dist) {
		var p50, p99, mx []time.Duration
		n := 0
		for _, run := range r.Latency {
			if run.Overlap != nil {
				d := f(run.Overlap)
				p50, p99, mx, n = append(p50, d.P50), append(p99, d.P99), append(mx, d.Max), n+d.N
			}
		}
		if len(p50) > 0 {
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | | |\n", label, n, Ms(MedianDuration(p50)), Ms(MedianDuration(p99)), Ms(MedianDuration(mx)))
		}
	}
	ov("in-process: signerd's SoftHSM key, keys.Open(…).Sign (C_SignInit+C_Sign+verify)", func(o *Overlap) Dist { return o.Sign })
	ov("in-process: statefile.Save (slot overwrite + fdatasync)", func(o *Overlap) Dist { return o.Save })
	ov("in-process: Save ‖ Sign as signer.Chain does it (ideal: max of the two; serial: their sum)", func(o *Overlap) Dist { return o.Both })
	rows := []struct {
		label string
		p     pick
	}{
		{"SignProposal", pickProposal},
		{"SignVote prevote", pickPrevote},
		{"SignVote precommit (+extension signature)", pickPrecommit},
		{"SignVote, all", func(l *LatencyResult) Dist { return l.Vote }},
		{"GetPubKey", func(l *LatencyResult) Dist { return l.PubKey }},
		{"Ping (transport only)", func(l *LatencyResult) Dist { return l.Ping }},
	}
	for _, name := range []string{NameFilePV, NameFile, NameSoftHSM} {
		for _, row := range rows {
			d, ok := r.medianDist(name, row.p)
			if !ok || d.N == 0 {
				continue
			}
			vsPV, _, ok1 := r.medianOf(func(run LatencyRun) (float64, bool) {
				a, pv := run.Results[name], run.Results[NameFilePV]
				if a == nil || pv == nil || row.p(pv).P50 == 0 {
					return 0, false
				}
				return float64(row.p(a).P50) / float64(row.p(pv).P50), true
			})
			vsFloor, _, ok2 := r.medianOf(func(run LatencyRun) (float64, bool) {
				a := run.Results[name]
				if a == nil || run.Floor.P50() == 0 {
					return 0, false
				}
				return float64(row.p(a).P50) / float64(run.Floor.P50()), true
			})
			c1, c2 := "", ""
			if ok1 {
				c1 = fmt.Sprintf("%.2f", vsPV)
			}
			if ok2 {
				c2 = fmt.Sprintf("%.2f", vsFloor)
			}
			fmt.Fprintf(b, "| %s: %s | %d | %s | %s | %s | %s | %s |\n", name, row.label, d.N, Ms(d.P50), Ms(d.P99), Ms(d.Max), c1, c2)
		}
	}
}

func (r *Report) chainMarkdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Chain: single-validator CometBFT v0.38.26, kvstore, timeout_commit = 0s\n\nEach setup is a fresh node home; blocks counted over a %s window after a short warm-up; setups alternate within each run.\n\n", r.ChainWindow)
	b.WriteString("| setup | blocks/s per run | median blocks/s | ratio to in-process FilePV (median of per-run ratios) | first block after start |\n|---|---|---:|---:|---:|\n")
	base := r.Chain[ChainFilePV]
	for _, s := range []ChainSetup{ChainFilePV, ChainSignerdFile, ChainSignerdSoftHSM} {
		runs := r.Chain[s]
		if len(runs) == 0 {
			continue
		}
		var bps, ratios []float64
		var first []time.Duration
		for i, c := range runs {
			bps = append(bps, c.BlocksPerSec())
			first = append(first, c.FirstBlock)
			if i < len(base) {
				ratios = append(ratios, c.BlocksPerSec()/base[i].BlocksPerSec())
			}
		}
		ratio := ""
		if len(ratios) > 0 {
			ratio = fmt.Sprintf("%.3f", Median(ratios))
		}
		fmt.Fprintf(b, "| %s | %s | %.1f | %s | %s s |\n", s, fmtRuns(bps, "%.1f"), Median(bps), ratio, fmt.Sprintf("%.2f", MedianDuration(first).Seconds()))
	}
}

func (r *Report) multiMarkdown(b *strings.Builder) {
	b.WriteString("\n## Multi-chain: chains signing concurrently through one signerd process\n\nEach chain has its own key (its own SoftHSM token, or its own key file), state file and validator connection; every validator (in the harness process, on the same 2 cores) drives heights as fast as it is answered and checks every 16th height's signatures. Signatures count every Ed25519 signature (proposal, prevote, precommit and its extension). The last column is bare SoftHSM (raw C_Sign, one token and session per thread, one process) on as many threads: the ceiling the HSM module itself allows.\n")
	i1 := indexOf(r.MultiChains, 1)
	for _, set := range r.Multi {
		fmt.Fprintf(b, "\n%s:\n\n", set.Target)
		b.WriteString("| chains | signatures/s per run | median signatures/s | × 1 chain | worst per-chain p99 ms (median) | CPU cores busy: signerd / validators (median) | bare SoftHSM ceiling, same number of threads: signatures/s (× 1 thread) |\n|---:|---|---:|---:|---:|---|---|\n")
		for i, n := range r.MultiChains {
			runs := set.Runs[i]
			if len(runs) == 0 {
				continue
			}
			var sps, ratios, scpu, hcpu []float64
			var p99 []time.Duration
			for j, m := range runs {
				scpu, hcpu = append(scpu, m.Cores(m.SignerCPU)), append(hcpu, m.Cores(m.HarnessCPU))
				sps = append(sps, m.SigsPerSec())
				p99 = append(p99, m.MaxP99())
				if i1 >= 0 && j < len(set.Runs[i1]) {
					ratios = append(ratios, m.SigsPerSec()/set.Runs[i1][j].SigsPerSec())
				}
			}
			ceil := ""
			if i < len(r.HSMCeiling) && len(r.HSMCeiling[i]) > 0 {
				var cr []float64
				for j, x := range r.HSMCeiling[i] {
					if i1 >= 0 && j < len(r.HSMCeiling[i1]) {
						cr = append(cr, x/r.HSMCeiling[i1][j])
					}
				}
				ceil = fmt.Sprintf("%.0f (%.2f×)", Median(r.HSMCeiling[i]), Median(cr))
			}
			fmt.Fprintf(b, "| %d | %s | %.0f | %.2f | %s | %.2f / %.2f | %s |\n", n, fmtRuns(sps, "%.0f"), Median(sps), Median(ratios), Ms(MedianDuration(p99)), Median(scpu), Median(hcpu), ceil)
		}
	}
}
