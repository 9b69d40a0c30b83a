package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/pubpresence/pubpresence/internal/xmltext"
	"strings"
)

// FieldFormType is the var of a form's hidden FORM_TYPE field (XEP-0068).
const FieldFormType = "FORM_TYPE"

// FieldValue is one field of a form to send: its var and its one value.
type FieldValue struct{ Var, Value string }

// AppendForm appends a data form (XEP-0004) of type typ ("submit",
// "result") to b: the hidden FORM_TYPE field first when formType is not "",
// then fields in order, each with its one value.
func AppendForm(b []byte, typ, formType string, fields ...FieldValue) []byte {
	b = append(b, "<x xmlns='"+NSData+"' type='"...)
	b = xmltext.Append(b, typ)
	b = append(b, "'>"...)
	if formType != "" {
		b = append(b, "<field var='"+FieldFormType+"' type='hidden'><value>"...)
		b = xmltext.Append(b, formType)
		b = append(b, "</value></field>"...)
	}
	for _, f := range fields {
		b = append(b, "<field var='"...)
		b = xmltext.Append(b, f.Var)
		b = append(b, "'><value>"...)
		b = xmltext.Append(b, f.Value)
		b = append(b, "</value></field>"...)
	}
	return append(b, "</x>"...)
}

// Form is a data form as read: <x xmlns='jabber:x:data'/>. Its xml tags let
// it be a field of a struct that encoding/xml fills, e.g.
// `xml:"jabber:x:data x"`.
type Form struct {
	Type   string  `xml:"type,attr"`
	Fields []Field `xml:"jabber:x:data field"`
}

// Field is one field of a Form.
type Field struct {
	Var    string   `xml:"var,attr"`
	Type   string   `xml:"type,attr"`
	Values []string `xml:"jabber:x:data value"`
	// Range is the field's XEP-0122 <validate><range/>, "" where absent.
	Range struct {
		Min string `xml:"min,attr"`
		Max string `xml:"max,attr"`
	} `xml:"validate>range"`
}

// Field returns the first field whose var is name, or nil.
func (f *Form) Field(name string) *Field {
	for i := range f.Fields {
		if f.Fields[i].Var == name {
			return &f.Fields[i]
		}
	}
	return nil
}

// Value returns the first value of the field name; ok is false when the
// form has no such field or the field no value.
func (f *Form) Value(name string) (v string, ok bool) {
	if fd := f.Field(name); fd != nil && len(fd.Values) > 0 {
		return fd.Values[0], true
	}
	return "", false
}

// FormType returns the value of the form's FORM_TYPE field, "" without one.
func (f *Form) FormType() string {
	v, _ := f.Value(FieldFormType)
	return v
}

// ParseForm reads b, which must be one data form: white space, comments and
// processing instructions may come before <x xmlns='jabber:x:data'>, text
// may not. What follows the form's end is not read.
func ParseForm(b []byte) (*Form, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, errors.New("data form: no element")
		}
		if err != nil {
			return nil, fmt.Errorf("data form: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("data form: text before the element")
			}
		case xml.StartElement:
			if t.Name.Local != "x" || t.Name.Space != NSData {
				return nil, fmt.Errorf("data form: <%s xmlns='%s'> is not one", clip(t.Name.Local), clip(t.Name.Space))
			}
			f := new(Form)
			if err := d.DecodeElement(f, &t); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, fmt.Errorf("data form: %w", err)
			}
			return f, nil
		}
	}
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}
