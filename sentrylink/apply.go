package sentrylink

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/creachadair/tomledit/parser"
	"github.com/creachadair/tomledit/scanner"
	"github.com/pelletier/go-toml/v2"

	"github.com/signerd/signerd/sentrylink/internal/tomlpatch"
)

// maxConfigSize bounds the config.toml we read: CometBFT's is about 20 KiB.
const maxConfigSize = 4 << 20

// ChangeAction says what apply did to a key.
type ChangeAction string

// The change actions.
const (
	ActionSet    ChangeAction = "set"    // an existing value was replaced
	ActionAdd    ChangeAction = "add"    // the key was missing and was appended to its section
	ActionRemove ChangeAction = "remove" // a kebab-case spelling CometBFT ignores was deleted
)

// Change is one key apply changed.
type Change struct {
	Action ChangeAction `json:"action"`
	Key    string       `json:"key"`  // as written in the file, e.g. "p2p.persistent-peers"
	Line   int          `json:"line"` // line in the old file, 0 for additions
	Old    string       `json:"old,omitempty"`
	New    string       `json:"new,omitempty"`
}

func (c Change) String() string {
	switch c.Action {
	case ActionAdd:
		return fmt.Sprintf("+ %s = %s (added)", c.Key, c.New)
	case ActionRemove:
		return fmt.Sprintf("- %s (line %d: kebab-case spelling CometBFT ignores; removed)", c.Key, c.Line)
	}
	return fmt.Sprintf("~ %s: %s -> %s (line %d)", c.Key, c.Old, c.New, c.Line)
}

// ApplyResult is the outcome of applying a plan to a config.toml.
type ApplyResult struct {
	Old, New []byte
	Changes  []Change
}

// Changed reports whether the new document differs from the old one.
func (r *ApplyResult) Changed() bool { return len(r.Changes) > 0 }

// ApplyTo edits src, a config.toml, so every key the plan owns has the
// planned value. Nothing outside those keys changes: values are spliced into
// place, missing keys are appended to their section, kebab-case spellings of
// owned keys are removed. A key that already has the planned value (compared
// as a value: 'x' equals "x", "3000ms" equals "3s") is left as written, so a
// second run changes nothing.
func (p *NodePlan) ApplyTo(src []byte) (*ApplyResult, error) {
	if len(src) > maxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes; this is not a CometBFT config.toml", maxConfigSize)
	}
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("not valid TOML: %v; fix the syntax first", err)
	}
	var generic map[string]any
	if err := toml.Unmarshal(src, &generic); err != nil {
		return nil, fmt.Errorf("not valid TOML: %v; fix it first (signerd sentry audit shows every problem)", decodeErrText(err))
	}
	ed := doc.NewEditor()
	res := &ApplyResult{Old: src}
	for _, s := range p.Settings {
		full := keyPath(s.Key)
		entries := doc.Entries(full...)
		want := s.TOML()
		switch len(entries) {
		case 0:
			var table parser.Key
			if s.Key.Section != "" {
				table = parser.Key{s.Key.Section}
			}
			ed.Insert(table, s.Key.Name, want)
			res.Changes = append(res.Changes, Change{Action: ActionAdd, Key: s.Key.String(), New: want})
		case 1:
			e := entries[0]
			if !sameValue(s, e) {
				ed.Replace(e, want)
				res.Changes = append(res.Changes, Change{Action: ActionSet, Key: s.Key.String(), Line: e.Line, Old: oneLine(e.ValueText()), New: want})
			}
		default:
			return nil, fmt.Errorf("%s is defined %d times; remove the duplicates first", s.Key.Display(), len(entries))
		}
		if kebab := strings.ReplaceAll(s.Key.Name, "_", "-"); kebab != s.Key.Name {
			kfull := keyPath(ConfigKey{s.Key.Section, kebab})
			for _, e := range doc.Entries(kfull...) {
				ed.Remove(e)
				res.Changes = append(res.Changes, Change{Action: ActionRemove, Key: strings.Join(kfull, "."), Line: e.Line, Old: oneLine(e.ValueText())})
			}
		}
	}
	sort.SliceStable(res.Changes, func(i, j int) bool {
		li, lj := res.Changes[i].Line, res.Changes[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	if !res.Changed() {
		res.New = src
		return res, nil
	}
	out, err := ed.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cannot edit: %v", err)
	}
	if err := p.checkApplied(out); err != nil {
		return nil, err
	}
	res.New = out
	return res, nil
}

// checkApplied re-reads an edited document with go-toml and confirms every
// owned key reads back as planned. It guards against editing mistakes on
// unusual files (for example a [p2p] table written inline).
func (p *NodePlan) checkApplied(out []byte) error {
	var generic map[string]any
	if err := toml.Unmarshal(out, &generic); err != nil {
		return fmt.Errorf("the edited file would not be valid TOML (%v); nothing was written. Is [p2p] or [rpc] written as an inline table? Rewrite it as a [section] and retry", decodeErrText(err))
	}
	doc, err := tomlpatch.Parse(out)
	if err != nil {
		return fmt.Errorf("the edited file would not parse (%v); nothing was written", err)
	}
	for _, s := range p.Settings {
		es := doc.Entries(keyPath(s.Key)...)
		if len(es) != 1 || !sameValue(s, es[0]) {
			return fmt.Errorf("after editing, %s does not read back as %s; nothing was written (please report this file's layout)", s.Key.Display(), s.TOML())
		}
	}
	return nil
}

func keyPath(k ConfigKey) []string {
	if k.Section == "" {
		return []string{k.Name}
	}
	return []string{k.Section, k.Name}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// decodeValue decodes one TOML value text.
func decodeValue(text string) (any, error) {
	var v struct {
		V any `toml:"v"`
	}
	if err := toml.Unmarshal([]byte("v = "+text+"\n"), &v); err != nil {
		return nil, err
	}
	return v.V, nil
}

func isStringToken(k scanner.Token) bool {
	return k == scanner.String || k == scanner.LString || k == scanner.MString || k == scanner.MLString
}

// sameValue reports whether entry e already holds setting s's value.
func sameValue(s Setting, e *tomlpatch.Entry) bool {
	v, err := decodeValue(e.ValueText())
	if err != nil {
		return false
	}
	switch s.Kind {
	case KindBool:
		b, ok := v.(bool)
		return ok && b == s.Value.(bool)
	case KindInt:
		n, ok := v.(int64)
		return ok && e.Kind == scanner.Integer && n == s.Value.(int64)
	}
	got, ok := v.(string)
	if !ok || !isStringToken(e.Kind) {
		return false
	}
	want := s.Value.(string)
	switch s.Kind {
	case KindDuration:
		a, err1 := time.ParseDuration(got)
		b, err2 := time.ParseDuration(want)
		return err1 == nil && err2 == nil && a == b
	case KindPeerList, KindIDList:
		return strings.Join(splitList(got), ",") == want
	}
	return got == want
}

// splitList splits a CometBFT comma-separated list the way CometBFT does
// (splitAndTrimEmpty: split on ",", trim spaces, drop empty items).
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func decodeErrText(err error) string {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Sprintf("line %d column %d: %s", row, col, de.Error())
	}
	return err.Error()
}

// UnifiedDiff returns a unified diff (3 lines of context) from old to new,
// labelled with name. It is empty when they are equal.
func UnifiedDiff(name string, old, new []byte) string {
	if bytes.Equal(old, new) {
		return ""
	}
	a, b := splitLines(old), splitLines(new)
	ops := diffLines(a, b)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s (after apply)\n", name, name)
	const ctx = 3
	// Group ops into hunks.
	type op struct {
		kind byte // ' ', '-', '+'
		line string
		ai   int
		bi   int
	}
	var all []op
	ai, bi := 0, 0
	for _, o := range ops {
		switch o {
		case ' ':
			all = append(all, op{' ', a[ai], ai, bi})
			ai++
			bi++
		case '-':
			all = append(all, op{'-', a[ai], ai, bi})
			ai++
		case '+':
			all = append(all, op{'+', b[bi], ai, bi})
			bi++
		}
	}
	i := 0
	for i < len(all) {
		if all[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(all) {
			if all[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(all) && all[run].kind == ' ' {
				run++
			}
			if run == len(all) || run-end > 2*ctx {
				end = min(end+ctx, len(all))
				break
			}
			end = run
		}
		aStart, bStart := all[start].ai, all[start].bi
		aLen, bLen := 0, 0
		var body strings.Builder
		for _, o := range all[start:end] {
			switch o.kind {
			case ' ':
				aLen++
				bLen++
			case '-':
				aLen++
			case '+':
				bLen++
			}
			line := o.line
			nl := strings.HasSuffix(line, "\n")
			body.WriteByte(o.kind)
			body.WriteString(strings.TrimSuffix(line, "\n"))
			body.WriteByte('\n')
			if !nl {
				body.WriteString("\\ No newline at end of file\n")
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		out.WriteString(body.String())
		i = end
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// diffLines returns an edit script (' ' keep, '-' delete, '+' insert) from a
// to b: common prefix and suffix, then a longest-common-subsequence diff of
// the middle (or a plain replacement when the middle is too large).
func diffLines(a, b []string) []byte {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	var ops []byte
	for range pre {
		ops = append(ops, ' ')
	}
	if len(ma)*len(mb) > 4_000_000 {
		for range ma {
			ops = append(ops, '-')
		}
		for range mb {
			ops = append(ops, '+')
		}
	} else {
		// lcs[i][j] = LCS length of ma[i:] and mb[j:]
		n, m := len(ma), len(mb)
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, ' ')
				i++
				j++
			case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
				ops = append(ops, '-')
				i++
			default:
				ops = append(ops, '+')
				j++
			}
		}
	}
	for range suf {
		ops = append(ops, ' ')
	}
	return ops
}
