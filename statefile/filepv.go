package statefile

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ParseFilePV decodes a CometBFT FilePV state (priv_validator_state.json):
//
//	{"height":"<int64>","round":<int32>,"step":<0..3>,"signature":"<base64>","signbytes":"<hex>"}
//
// signature and signbytes are optional. Decoding is strict: the three
// positional keys are required, unknown, duplicate or differently cased keys
// are errors, height must be a decimal string as cmtjson writes it, and the
// record must pass [Record.Validate] (sign bytes are checked against the HRS
// but not against a chain id, which the file does not name; [Create] checks
// that). Errors name the field and the value.
func ParseFilePV(data []byte) (Record, error) {
	fields, err := jsonObject(data)
	if err != nil {
		return Record{}, fmt.Errorf("priv_validator_state: %w", err)
	}
	var r Record
	for _, k := range []string{"height", "round", "step"} {
		if v, ok := fields[k]; !ok || string(v) == "null" {
			return Record{}, fmt.Errorf("priv_validator_state: %q is missing", k)
		}
	}
	for k, v := range fields {
		switch k {
		case "height":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: height %s is not a quoted integer (cmtjson writes \"height\":\"123\")", v)
			}
			h, err := strconv.ParseInt(s, 10, 64)
			if err != nil || strconv.FormatInt(h, 10) != s {
				return Record{}, fmt.Errorf("priv_validator_state: height %q is not a decimal int64", s)
			}
			r.Height = h
		case "round":
			if err := json.Unmarshal(v, &r.Round); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: round %s is not an int32", v)
			}
		case "step":
			var s int8
			if err := json.Unmarshal(v, &s); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: step %s is not a number 0-3", v)
			}
			r.Step = Step(s)
		case "signature":
			if string(v) == "null" {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: signature %s is not a base64 string", v)
			}
			if r.Signature, err = base64.StdEncoding.Strict().DecodeString(s); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: signature is not base64: %v", err)
			}
		case "signbytes":
			if string(v) == "null" {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: signbytes %s is not a hex string", v)
			}
			if r.SignBytes, err = hex.DecodeString(s); err != nil {
				return Record{}, fmt.Errorf("priv_validator_state: signbytes are not hex: %v", err)
			}
		default:
			return Record{}, fmt.Errorf("priv_validator_state: unknown key %q (want height, round, step, signature, signbytes)", k)
		}
	}
	if len(r.SignBytes) == 0 {
		r.SignBytes = nil
	}
	if len(r.Signature) == 0 {
		r.Signature = nil
	}
	if err := r.Validate(""); err != nil {
		return Record{}, fmt.Errorf("priv_validator_state: %w", err)
	}
	return r, nil
}

// jsonObject decodes one JSON object into its raw values, refusing
// duplicate keys and anything after the object.
func jsonObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("value of %q: %v", k, err)
		}
		out[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// FormatFilePV encodes r as CometBFT writes priv_validator_state.json
// (cmtjson.MarshalIndent with two spaces, no final newline), for `state
// export`. FilePV panics when it meets sign bytes without a signature at a
// repeated height/round/step, so sign bytes are written only together with a
// signature: a record from the signing path (which stores no signature)
// exports without its sign bytes, and FilePV then refuses that one HRS
// ("no SignBytes found") instead of crashing. To export them, set
// r.Signature to the key's signature of r.SignBytes first.
func FormatFilePV(r Record) []byte {
	b := make([]byte, 0, 64+len(r.Signature)*2+len(r.SignBytes)*2)
	b = append(b, "{\n  \"height\": \""...)
	b = strconv.AppendInt(b, r.Height, 10)
	b = append(b, "\",\n  \"round\": "...)
	b = strconv.AppendInt(b, int64(r.Round), 10)
	b = append(b, ",\n  \"step\": "...)
	b = strconv.AppendInt(b, int64(r.Step), 10)
	if len(r.Signature) > 0 && len(r.SignBytes) > 0 {
		b = append(b, ",\n  \"signature\": \""...)
		b = base64.StdEncoding.AppendEncode(b, r.Signature)
		b = append(b, "\",\n  \"signbytes\": \""...)
		b = appendUpperHex(b, r.SignBytes)
		b = append(b, '"')
	}
	return append(b, "\n}"...)
}
