package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// problems collects the lines of an Error. Keys whose value could not be
// decoded are remembered so that validation does not report them a second
// time (a wrongly typed component is not also "required").
type problems struct {
	lines []string
	bad   map[string]bool
}

func newProblems() *problems { return &problems{bad: make(map[string]bool)} }

// add records a validation problem about key ("xmpp.domains[1]" names an
// element of xmpp.domains), unless that key or its section failed to decode.
func (p *problems) add(key, format string, args ...any) {
	base, _, _ := strings.Cut(key, "[")
	section, _, _ := strings.Cut(base, ".")
	if p.bad[base] || p.bad[section] {
		return
	}
	p.lines = append(p.lines, key+": "+fmt.Sprintf(format, args...))
}

// decodeFailed records that key could not be decoded.
func (p *problems) decodeFailed(key, format string, args ...any) {
	p.bad[key] = true
	p.lines = append(p.lines, key+": "+fmt.Sprintf(format, args...))
}

// tomlName returns the toml tag name of a struct field; "-" for a field
// that is not a key of the file (set from another key: keyName).
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// keyName returns the key of the file a struct field holds: its toml name,
// or for a field derived from another key (toml:"-"), that key's name from
// the tag key ("" for none).
func keyName(f reflect.StructField) string {
	if name := tomlName(f); name != "-" {
		return name
	}
	return f.Tag.Get("key")
}

// decode reads data over cfg, one key at a time, so that one bad value does
// not hide the others. It records a problem for every key of the wrong type,
// every unparsable value and every unknown key. It returns false only when
// the data is not TOML at all; then the syntax error is the only problem.
func decode(data []byte, cfg *Config, p *problems) bool {
	var raw map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			p.lines = append(p.lines, fmt.Sprintf("syntax error at line %d, column %d: %s",
				pe.Position.Line, pe.Position.Col, oneLine(pe.Message)))
		} else {
			p.lines = append(p.lines, "syntax error: "+oneLine(err.Error()))
		}
		return false
	}

	known := make(map[string]bool) // dotted section and key names
	leaves := make(map[string]bool)
	rv := reflect.ValueOf(cfg).Elem()
	for i := range rv.NumField() {
		section := tomlName(rv.Type().Field(i))
		known[section] = true
		sv := rv.Field(i)
		for j := range sv.NumField() {
			name := tomlName(sv.Type().Field(j))
			if name == "-" {
				continue
			}
			key := section + "." + name
			known[key] = true
			leaves[key] = true
		}

		prim, ok := raw[section]
		if !ok {
			continue
		}
		// PrimitiveDecode quietly leaves the map empty for a non-table
		// value, so check the type first. A table created implicitly (by
		// dotted keys or [xmpp.sub]) has no type of its own.
		var keys map[string]toml.Primitive
		if t := md.Type(section); t != "Hash" && t != "" {
			p.decodeFailed(section, "must be a table, not %s", describeTOML(t))
			continue
		}
		if err := md.PrimitiveDecode(prim, &keys); err != nil {
			p.decodeFailed(section, "must be a table")
			continue
		}
		for j := range sv.NumField() {
			name := tomlName(sv.Type().Field(j))
			kp, ok := keys[name]
			switch {
			case !ok || name == "-":
			case section == "xmpp" && name == "address":
				decodeAddress(&md, kp, &cfg.XMPP, p)
			default:
				decodeKey(&md, kp, section, name, sv.Field(j), p)
			}
		}
	}

	// Unknown keys, in document order. Keys under an unknown table, under a
	// section that is not a table, or under a value that should not be a
	// table at all were already reported and are not reported again.
	unknown := make(map[string]bool)
	for _, k := range md.Keys() {
		name := k.String()
		if known[name] || p.bad[k[0]] || under(k, unknown) || under(k, leaves) {
			continue
		}
		unknown[name] = true
		msg := "unknown key"
		if t := md.Type(k...); t == "Hash" || t == "" { // "": a table made implicitly by [a.b.c]
			msg = "unknown table"
		}
		if s := suggest(k, known); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		p.decodeFailed(name, "%s", msg)
	}
	return true
}

// sortBySection orders problem lines by the section they are about, in the
// order of the Config struct, so an operator reads them file section by file
// section. Lines about anything else (unknown tables) come last. The sort is
// stable: within a section, the order of discovery is kept.
func sortBySection(lines []string) {
	configType := reflect.TypeFor[Config]()
	rank := make(map[string]int, configType.NumField())
	for i := range configType.NumField() {
		rank[tomlName(configType.Field(i))] = i
	}
	rankOf := func(line string) int {
		key, _, _ := strings.Cut(line, ":")
		section, _, _ := strings.Cut(key, ".")
		section, _, _ = strings.Cut(section, "[")
		if r, ok := rank[section]; ok {
			return r
		}
		return len(rank)
	}
	slices.SortStableFunc(lines, func(a, b string) int { return rankOf(a) - rankOf(b) })
}

// under reports whether k lies strictly inside one of the keys in set.
func under(k toml.Key, set map[string]bool) bool {
	for i := 1; i < len(k); i++ {
		if set[k[:i].String()] {
			return true
		}
	}
	return false
}

var durationType = reflect.TypeFor[Duration]()

// decodeKey decodes one value into field, or records why it cannot.
func decodeKey(md *toml.MetaData, prim toml.Primitive, section, name string, field reflect.Value, p *problems) {
	key := section + "." + name
	wantType, want := expected(field.Type())
	if got := md.Type(section, name); got != "" && got != wantType {
		p.decodeFailed(key, "must be %s, not %s", want, describeTOML(got))
		return
	}
	v := reflect.New(field.Type())
	if err := md.PrimitiveDecode(prim, v.Interface()); err != nil {
		switch {
		case field.Type() == durationType:
			var pe toml.ParseError
			if errors.As(err, &pe) {
				p.decodeFailed(key, "%s", oneLine(pe.Message))
			} else {
				p.decodeFailed(key, "%s", oneLine(err.Error()))
			}
		default:
			p.decodeFailed(key, "must be %s", want)
		}
		return
	}
	field.Set(v.Elem())
}

// decodeAddress reads xmpp.address, a string or an array of strings. A
// string sets Address and leaves Addresses nil; an array sets Addresses
// (empty, not nil, when the array is) and Address to its first element.
// validate tells the two apart by that.
func decodeAddress(md *toml.MetaData, prim toml.Primitive, x *XMPP, p *problems) {
	const key, want = "xmpp.address", `a string ("host:port") or an array of strings (one per cluster node)`
	switch t := md.Type("xmpp", "address"); t {
	case "String":
		var s string
		if err := md.PrimitiveDecode(prim, &s); err != nil {
			p.decodeFailed(key, "must be %s", want)
			return
		}
		x.Address, x.Addresses = s, nil
	case "Array":
		var a []string
		if err := md.PrimitiveDecode(prim, &a); err != nil {
			p.decodeFailed(key, "must be %s", want)
			return
		}
		x.Address, x.Addresses = "", append([]string{}, a...)
		if len(a) > 0 {
			x.Address = a[0]
		}
	default:
		p.decodeFailed(key, "must be %s, not %s", want, describeTOML(t))
	}
}

// expected returns the TOML type a Go field type is read from, as
// MetaData.Type spells it, and how to say it in a problem line.
func expected(t reflect.Type) (tomlType, desc string) {
	switch {
	case t == durationType:
		return "String", `a duration string such as "30s"`
	case t.Kind() == reflect.String:
		return "String", "a string"
	case t.Kind() == reflect.Bool:
		return "Bool", "true or false"
	case t.Kind() == reflect.Int:
		return "Integer", "an integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "Array", "an array of strings"
	}
	panic("config: no TOML type for " + t.String()) // a new Config field of an unhandled type
}

// describeTOML turns a MetaData.Type name into words.
func describeTOML(t string) string {
	switch t {
	case "String":
		return "a string"
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "Bool":
		return "a boolean"
	case "Array":
		return "an array"
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "an array of tables"
	case "":
		return "a value of another type"
	}
	if strings.Contains(t, "Date") || strings.Contains(t, "Time") {
		return "a date/time"
	}
	return "a " + strings.ToLower(t)
}

// suggest returns a known key close to the unknown key k (same table,
// within two edits), or "".
func suggest(k toml.Key, known map[string]bool) string {
	prefix := ""
	if len(k) > 1 {
		prefix = k[:len(k)-1].String() + "."
	}
	last := k[len(k)-1]
	best, bestDist := "", 3
	for name := range known {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || strings.Contains(rest, ".") {
			continue
		}
		if d := editDistance(last, rest); d < bestDist || (d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes. It
// gives up early (returning a large value) for very different lengths.
func editDistance(a, b string) int {
	if d := len(a) - len(b); d > 2 || d < -2 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// oneLine keeps a message from the TOML library on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
