package tomlpatch

import (
	"strings"
	"testing"

	"github.com/creachadair/tomledit/parser"
)

func mustParse(t *testing.T, src string) *Doc {
	t.Helper()
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func one(t *testing.T, d *Doc, key ...string) *Entry {
	t.Helper()
	es := d.Entries(key...)
	if len(es) != 1 {
		t.Fatalf("Entries(%v) = %d entries, want 1", key, len(es))
	}
	return es[0]
}

func TestEntriesAndSpans(t *testing.T) {
	src := "# head\ntop = 'x'   # trailing\n\n[p2p]\n  pex=true\npeers = [\n  \"a\", # c\n  \"b\",\n]\ninline = { a = 1, b = [2] }\n[rpc] # hdr\nladdr = \"tcp://127.0.0.1:26657\""
	d := mustParse(t, src)
	tests := []struct {
		key       []string
		value     string
		line      int
		lineStart string // text from LineStart to the value
	}{
		{[]string{"top"}, "'x'", 2, "top = "},
		{[]string{"p2p", "pex"}, "true", 5, "  pex="},
		{[]string{"p2p", "peers"}, "[\n  \"a\", # c\n  \"b\",\n]", 6, "peers = "},
		{[]string{"p2p", "inline"}, "{ a = 1, b = [2] }", 10, "inline = "},
		{[]string{"rpc", "laddr"}, `"tcp://127.0.0.1:26657"`, 12, "laddr = "},
	}
	for _, tc := range tests {
		e := one(t, d, tc.key...)
		if got := e.ValueText(); got != tc.value {
			t.Errorf("%v value = %q, want %q", tc.key, got, tc.value)
		}
		if e.Line != tc.line {
			t.Errorf("%v line = %d, want %d", tc.key, e.Line, tc.line)
		}
		if got := src[e.LineStart:e.ValueStart]; got != tc.lineStart {
			t.Errorf("%v line prefix = %q, want %q", tc.key, got, tc.lineStart)
		}
	}
	if e := one(t, d, "rpc", "laddr"); e.End != len(src) {
		t.Errorf("last entry End = %d, want %d (EOF without newline)", e.End, len(src))
	}
}

func TestReplaceKeepsEverythingElse(t *testing.T) {
	src := "a = 1 # keep me\n[p2p]\npex   =   true    # aligned\nx = \"y\"\r\n"
	d := mustParse(t, src)
	ed := d.NewEditor()
	ed.Replace(one(t, d, "p2p", "pex"), "false")
	ed.Replace(one(t, d, "a"), "2")
	out, err := ed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := "a = 2 # keep me\n[p2p]\npex   =   false    # aligned\nx = \"y\"\r\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestReplaceMultilineArray(t *testing.T) {
	src := "[p2p]\npersistent_peers = [\n  \"a\",\n  \"b\",\n] # was an array\nnext = 1\n"
	d := mustParse(t, src)
	ed := d.NewEditor()
	ed.Replace(one(t, d, "p2p", "persistent_peers"), `"a,b"`)
	out, err := ed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := "[p2p]\npersistent_peers = \"a,b\" # was an array\nnext = 1\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestRemove(t *testing.T) {
	src := "[p2p]\n# about pex\npex = true\npersistent-peers = \"x\" # old\nseeds = \"\"\n"
	d := mustParse(t, src)
	ed := d.NewEditor()
	ed.Remove(one(t, d, "p2p", "persistent-peers"))
	out, err := ed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := "[p2p]\n# about pex\npex = true\nseeds = \"\"\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestInsert(t *testing.T) {
	tests := []struct {
		name, src, want string
		table           parser.Key
	}{
		{"after last entry", "a = 1\n[p2p]\npex = true\n\n# next\n[rpc]\n", "a = 1\n[p2p]\npex = true\nnew = \"v\"\n\n# next\n[rpc]\n", parser.Key{"p2p"}},
		{"empty table", "[p2p]\n[rpc]\n", "[p2p]\nnew = \"v\"\n[rpc]\n", parser.Key{"p2p"}},
		{"root", "# c\na = 1\n[p2p]\n", "# c\na = 1\nnew = \"v\"\n[p2p]\n", nil},
		{"root without keys", "[p2p]\n", "new = \"v\"\n[p2p]\n", nil},
		{"missing table", "a = 1\n", "a = 1\n\n[p2p]\nnew = \"v\"\n", parser.Key{"p2p"}},
		{"missing table, no final newline", "a = 1", "a = 1\n\n[p2p]\nnew = \"v\"\n", parser.Key{"p2p"}},
		{"last entry without newline", "[p2p]\npex = true", "[p2p]\npex = true\nnew = \"v\"\n", parser.Key{"p2p"}},
		{"indented table", "[p2p]\n  pex = true\n", "[p2p]\n  pex = true\n  new = \"v\"\n", parser.Key{"p2p"}},
		{"crlf", "[p2p]\r\npex = true\r\n", "[p2p]\r\npex = true\r\nnew = \"v\"\r\n", parser.Key{"p2p"}},
		{"empty document", "", "[p2p]\nnew = \"v\"\n", parser.Key{"p2p"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, tc.src)
			ed := d.NewEditor()
			ed.Insert(tc.table, "new", `"v"`)
			out, err := ed.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", out, tc.want)
			}
			if _, err := Parse(out); err != nil {
				t.Errorf("result does not parse: %v", err)
			}
		})
	}
}

func TestInsertKeepsCallOrder(t *testing.T) {
	d := mustParse(t, "[p2p]\nx = 1\n")
	ed := d.NewEditor()
	for _, k := range []string{"c", "a", "b"} {
		ed.Insert(parser.Key{"p2p"}, k, "1")
		ed.Insert(parser.Key{"rpc"}, k, "2")
	}
	out, err := ed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := "[p2p]\nx = 1\nc = 1\na = 1\nb = 1\n\n[rpc]\nc = 2\na = 2\nb = 2\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
}

func TestSeveralInsertsAtEOFWithoutNewline(t *testing.T) {
	d := mustParse(t, "[p2p]\n\tpex = true")
	ed := d.NewEditor()
	ed.Insert(parser.Key{"p2p"}, "a", "1")
	ed.Insert(parser.Key{"p2p"}, "b", "2")
	out, err := ed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[p2p]\n\tpex = true\n\ta = 1\n\tb = 2\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestDottedAndQuotedKeys(t *testing.T) {
	d := mustParse(t, "p2p.pex = true\n\"rpc\".'laddr' = \"x\"\n[[array]]\npex = 1\n")
	if e := one(t, d, "p2p", "pex"); e.ValueText() != "true" {
		t.Errorf("dotted key value %q", e.ValueText())
	}
	if e := one(t, d, "rpc", "laddr"); e.ValueText() != `"x"` {
		t.Errorf("quoted key value %q", e.ValueText())
	}
	if es := d.Entries("array", "pex"); len(es) != 0 {
		t.Errorf("array-table entries are not addressable, got %d", len(es))
	}
}

func TestOverlappingEditsRejected(t *testing.T) {
	d := mustParse(t, "a = 1\n")
	ed := d.NewEditor()
	e := one(t, d, "a")
	ed.Replace(e, "2")
	ed.Remove(e)
	if _, err := ed.Bytes(); err == nil || !strings.Contains(err.Error(), "overlapping") {
		t.Errorf("err = %v, want an overlap error", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{"a = \n", "[p2p\n", "a = [1,\n", "= 1\n", "a b = 1\n"} {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", src)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a = 1\n[p2p]\npex = true # c\npeers = [\"a\",\n\"b\"]\n",
		"[[x]]\ny = {a = 1}\n",
		"p2p.pex = false\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		d, err := Parse([]byte(src))
		if err != nil {
			return
		}
		// Every entry's spans lie inside the document and are ordered.
		for _, e := range d.All() {
			if !(0 <= e.LineStart && e.LineStart <= e.ValueStart && e.ValueStart < e.ValueEnd && e.ValueEnd <= e.End && e.End <= len(src)) {
				t.Fatalf("bad spans %+v for %q", e, src)
			}
		}
		// Replacing every value with itself reproduces the document.
		ed := d.NewEditor()
		for _, e := range d.All() {
			ed.Replace(e, e.ValueText())
		}
		out, err := ed.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != src {
			t.Fatalf("identity edit changed the document:\n%q\n%q", src, out)
		}
	})
}
