// Package tomlpatch edits the values of individual keys in a TOML document
// while keeping every other byte of the document unchanged.
//
// tomledit's Formatter re-emits a whole document from its syntax tree, which
// normalises blank lines, trailing spaces in comments and trailing commas in
// arrays (measured on CometBFT's stock config.toml: 30+ changed lines for zero
// edits). An operator's config.toml must not change outside the keys we own, so
// this package uses tomledit's parser to validate the document and tomledit's
// scanner to find the exact byte span of every table header and key/value, and
// then splices new value text into those spans.
//
// # Invariants
//
//   - Bytes outside an edited span are copied unchanged, including comments,
//     blank lines, alignment and line endings.
//   - Replace changes only the value text of an entry; its key, the spacing
//     around "=" and any trailing comment stay.
//   - Remove deletes exactly the lines of one entry.
//   - Insert appends "key = value" after the last entry of the first table
//     with that name, or appends a new table at the end of the document.
package tomlpatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/creachadair/tomledit"
	"github.com/creachadair/tomledit/parser"
	"github.com/creachadair/tomledit/scanner"
)

// Doc is a parsed TOML document that remembers where each table header and
// key/value sits in its source bytes.
type Doc struct {
	src []byte
	nl  string // line ending used for inserted lines: "\n" or "\r\n"

	// Tables lists the tables in source order. Tables[0] is the root table
	// (keys before the first header); it has a nil Name.
	Tables []*Table
}

// Table is one table header and the key/values that follow it.
type Table struct {
	Name      parser.Key // nil for the root table
	IsArray   bool       // [[name]]
	Line      int        // 1-based line of the header (0 for the root table)
	HeaderEnd int        // offset just after the header line (0 for the root table)
	Entries   []*Entry
}

// Entry is one key/value assignment.
type Entry struct {
	Table *Table
	// Key is the dotted key as written, relative to Table.
	Key parser.Key
	// Line is the 1-based line of the key.
	Line int
	// LineStart is the offset of the first byte of the key's line.
	LineStart int
	// ValueStart and ValueEnd delimit the value text (without trailing comment).
	ValueStart, ValueEnd int
	// End is the offset just after the line break that ends the entry, or the
	// document length when the entry is on the last line without a line break.
	End int
	// Kind is the first token of the value: a scalar token type, or
	// scanner.LBracket for an array and scanner.LInline for an inline table.
	Kind scanner.Token

	doc *Doc
}

// FullKey is the table name followed by the entry's key.
func (e *Entry) FullKey() parser.Key {
	k := make(parser.Key, 0, len(e.Table.Name)+len(e.Key))
	k = append(k, e.Table.Name...)
	return append(k, e.Key...)
}

// ValueText is the value exactly as written in the source.
func (e *Entry) ValueText() string { return string(e.doc.src[e.ValueStart:e.ValueEnd]) }

// Parse parses src. It returns an error for any text that is not valid TOML
// syntax (tomledit's parser decides); it does not detect duplicate keys.
func Parse(src []byte) (*Doc, error) {
	if _, err := tomledit.Parse(bytes.NewReader(src)); err != nil {
		return nil, err
	}
	d := &Doc{src: src, nl: "\n"}
	if bytes.Contains(src, []byte("\r\n")) {
		d.nl = "\r\n"
	}
	w := &walker{d: d, sc: scanner.New(bytes.NewReader(src))}
	if err := w.run(); err != nil {
		return nil, err
	}
	return d, nil
}

// Source returns the document's bytes.
func (d *Doc) Source() []byte { return d.src }

// Entries returns every key/value of the document outside array tables whose
// full key equals key, in source order.
func (d *Doc) Entries(key ...string) []*Entry {
	var out []*Entry
	for _, t := range d.Tables {
		if t.IsArray {
			continue
		}
		for _, e := range t.Entries {
			if e.FullKey().Equals(key) {
				out = append(out, e)
			}
		}
	}
	return out
}

// All returns every key/value of the document outside array tables, in
// source order.
func (d *Doc) All() []*Entry {
	var out []*Entry
	for _, t := range d.Tables {
		if !t.IsArray {
			out = append(out, t.Entries...)
		}
	}
	return out
}

type walker struct {
	d         *Doc
	sc        *scanner.Scanner
	cur       *Table
	lineStart int
}

var errUnexpectedEOF = errors.New("unexpected end of input")

func (w *walker) next() error {
	err := w.sc.Next()
	if err == io.EOF {
		return errUnexpectedEOF
	}
	return err
}

func (w *walker) where() string { return w.sc.Location().First.String() }

func (w *walker) run() error {
	w.cur = &Table{}
	w.d.Tables = append(w.d.Tables, w.cur)
	for {
		err := w.sc.Next()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		switch w.sc.Token() {
		case scanner.Newline:
			w.lineStart = w.sc.Span().End
		case scanner.Comment:
			w.commentEnd()
		case scanner.LBracket:
			if err := w.header(); err != nil {
				return err
			}
		default:
			if err := w.keyValue(); err != nil {
				return err
			}
		}
	}
}

// endOfLine consumes an optional comment and the line break, returning the
// offset after the line break (or the document length at EOF).
func (w *walker) endOfLine() (int, error) {
	for {
		err := w.sc.Next()
		if err == io.EOF {
			return len(w.d.src), nil
		} else if err != nil {
			return 0, err
		}
		switch w.sc.Token() {
		case scanner.Comment:
			// tomledit's scanner includes the line break in a comment token.
			if w.commentEnd() {
				return w.sc.Span().End, nil
			}
			return len(w.d.src), nil
		case scanner.Newline:
			end := w.sc.Span().End
			w.lineStart = end
			return end, nil
		default:
			return 0, fmt.Errorf("at %s: unexpected %v after value", w.where(), w.sc.Token())
		}
	}
}

// commentEnd handles a comment token, which includes its line break unless
// it ends the document. It reports whether the comment ended a line.
func (w *walker) commentEnd() bool {
	end := w.sc.Span().End
	if end > 0 && end <= len(w.d.src) && w.d.src[end-1] == '\n' {
		w.lineStart = end
		return true
	}
	return false
}

func (w *walker) header() error {
	line := w.sc.Location().First.Line
	open := w.sc.Span()
	if err := w.next(); err != nil {
		return err
	}
	isArray := false
	if w.sc.Token() == scanner.LBracket && w.sc.Span().Pos == open.End {
		isArray = true
		open = w.sc.Span()
		if err := w.next(); err != nil {
			return err
		}
	}
	keyStart := w.sc.Span().Pos
	for w.sc.Token() != scanner.RBracket {
		if w.sc.Token() == scanner.Newline {
			return fmt.Errorf("at %s: unterminated table header", w.where())
		}
		if err := w.next(); err != nil {
			return err
		}
	}
	key, err := parseKey(string(w.d.src[keyStart:w.sc.Span().Pos]))
	if err != nil {
		return fmt.Errorf("line %d: table name: %w", line, err)
	}
	if isArray {
		if err := w.next(); err != nil || w.sc.Token() != scanner.RBracket {
			return fmt.Errorf("line %d: unterminated array table header", line)
		}
	}
	end, err := w.endOfLine()
	if err != nil {
		return err
	}
	w.cur = &Table{Name: key, IsArray: isArray, Line: line, HeaderEnd: end}
	w.d.Tables = append(w.d.Tables, w.cur)
	return nil
}

func (w *walker) keyValue() error {
	line := w.sc.Location().First.Line
	keyStart := w.sc.Span().Pos
	for w.sc.Token() != scanner.Equal {
		if w.sc.Token() == scanner.Newline || w.sc.Token() == scanner.Comment {
			return fmt.Errorf("at %s: key without value", w.where())
		}
		if err := w.next(); err != nil {
			return err
		}
	}
	key, err := parseKey(string(w.d.src[keyStart:w.sc.Span().Pos]))
	if err != nil {
		return fmt.Errorf("line %d: key: %w", line, err)
	}
	if err := w.next(); err != nil {
		return err
	}
	e := &Entry{Table: w.cur, Key: key, Line: line, LineStart: w.lineStart, doc: w.d}
	e.Kind = w.sc.Token()
	e.ValueStart = w.sc.Span().Pos
	switch e.Kind {
	case scanner.LBracket, scanner.LInline:
		depth := 0
		for {
			switch w.sc.Token() {
			case scanner.LBracket, scanner.LInline:
				depth++
			case scanner.RBracket, scanner.RInline:
				depth--
			}
			if depth == 0 {
				break
			}
			if err := w.next(); err != nil {
				return err
			}
		}
	default:
		if !e.Kind.IsValue() {
			return fmt.Errorf("at %s: unexpected %v where a value belongs", w.where(), e.Kind)
		}
	}
	e.ValueEnd = w.sc.Span().End
	if e.End, err = w.endOfLine(); err != nil {
		return err
	}
	w.cur.Entries = append(w.cur.Entries, e)
	return nil
}

// Editor collects edits to a Doc and produces the edited bytes.
type Editor struct {
	d       *Doc
	splices []splice
	inserts []insert
}

type splice struct {
	start, end int
	text       string
	seq        int
}

type insert struct {
	table parser.Key
	key   string
	value string
}

// NewEditor starts a set of edits on d. d itself is never modified.
func (d *Doc) NewEditor() *Editor { return &Editor{d: d} }

// Replace sets e's value text to value, keeping everything else on its lines.
func (ed *Editor) Replace(e *Entry, value string) {
	ed.splices = append(ed.splices, splice{start: e.ValueStart, end: e.ValueEnd, text: value, seq: len(ed.splices)})
}

// Remove deletes the lines of e (from the start of its key's line to the end
// of its value's line).
func (ed *Editor) Remove(e *Entry) {
	ed.splices = append(ed.splices, splice{start: e.LineStart, end: e.End, seq: len(ed.splices)})
}

// Insert adds "key = value" to the table named table (nil: the root table).
// Inserts into the same table keep their call order.
func (ed *Editor) Insert(table parser.Key, key, value string) {
	ed.inserts = append(ed.inserts, insert{table: table, key: key, value: value})
}

// Bytes applies the edits and returns the new document. Overlapping edits
// are an error.
func (ed *Editor) Bytes() ([]byte, error) {
	src := ed.d.src
	nl := ed.d.nl
	sp := append([]splice(nil), ed.splices...)
	var appendix strings.Builder
	var missing []string // table names appended at the end, in first-use order
	missingLines := map[string][]string{}

	eofBreakAdded := false
	for _, in := range ed.inserts {
		line := keyText(in.key) + " = " + in.value
		t := ed.d.firstTable(in.table)
		if t == nil {
			name := in.table.String()
			if _, ok := missingLines[name]; !ok {
				missing = append(missing, name)
			}
			missingLines[name] = append(missingLines[name], line)
			continue
		}
		pos, indent := t.HeaderEnd, ""
		if len(t.Entries) > 0 {
			last := t.Entries[len(t.Entries)-1]
			pos = last.End
			indent = leadingSpace(src[last.LineStart:last.ValueStart])
		}
		if t.Name == nil && len(t.Entries) == 0 {
			pos = 0
		}
		text := indent + line + nl
		if pos == len(src) && pos > 0 && src[pos-1] != '\n' && !eofBreakAdded {
			// The document ends without a line break: add one, once.
			text = nl + text
			eofBreakAdded = true
		}
		sp = append(sp, splice{start: pos, end: pos, text: text, seq: len(sp)})
	}
	for _, name := range missing {
		if appendix.Len() > 0 || len(src) > 0 {
			appendix.WriteString(nl)
		}
		if name == "" {
			return nil, errors.New("cannot insert into a missing root table")
		}
		appendix.WriteString("[" + name + "]" + nl)
		for _, l := range missingLines[name] {
			appendix.WriteString(l + nl)
		}
	}

	sort.SliceStable(sp, func(i, j int) bool {
		if sp[i].start != sp[j].start {
			return sp[i].start < sp[j].start
		}
		return sp[i].seq < sp[j].seq
	})
	var out bytes.Buffer
	at := 0
	for _, s := range sp {
		if s.start < at {
			return nil, fmt.Errorf("overlapping edits at offset %d", s.start)
		}
		out.Write(src[at:s.start])
		out.WriteString(s.text)
		at = s.end
	}
	out.Write(src[at:])
	if appendix.Len() > 0 {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteString(nl)
		}
		out.WriteString(appendix.String())
	}
	return out.Bytes(), nil
}

func (d *Doc) firstTable(name parser.Key) *Table {
	for _, t := range d.Tables {
		if !t.IsArray && t.Name.Equals(name) && (name != nil || t.Line == 0) {
			return t
		}
	}
	return nil
}

// parseKey parses a key as written. Plain keys ("pex", "p2p.pex") take a
// fast path; anything quoted or spaced goes through tomledit's ParseKey.
func parseKey(raw string) (parser.Key, error) {
	raw = strings.TrimSpace(raw)
	if raw != "" && !strings.ContainsAny(raw, "\"' \t") {
		parts := strings.Split(raw, ".")
		ok := true
		for _, p := range parts {
			if p == "" || !scanner.IsWord(p) {
				ok = false
				break
			}
		}
		if ok {
			return parser.Key(parts), nil
		}
	}
	return parser.ParseKey(raw)
}

// leadingSpace returns the spaces and tabs at the start of s.
func leadingSpace(s []byte) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return string(s[:i])
}

func keyText(k string) string { return parser.Key{k}.String() }
