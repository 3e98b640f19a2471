package ingest

// DefaultMaxDepth bounds how deeply a payload may nest arrays and objects.
// encoding/json alone accepts 10 000 levels; receivers' parsers often
// recurse and some crash far earlier, and we forward the payload to them.
const DefaultMaxDepth = 64

// DepthScanner tracks the nesting depth of a JSON text fed to it in pieces,
// without decoding it, so a request body can be refused before a decoder
// recurses into it. It only looks at brackets outside strings; whether the
// text is valid JSON is the decoder's business. The zero value is ready.
type DepthScanner struct {
	depth    int
	max      int // deepest seen
	inString bool
	escaped  bool
}

// Write feeds the next piece of the text and returns the greatest depth
// seen so far.
func (s *DepthScanner) Write(p []byte) int {
	for _, c := range p {
		if s.inString {
			switch {
			case s.escaped:
				s.escaped = false
			case c == '\\':
				s.escaped = true
			case c == '"':
				s.inString = false
			}
			continue
		}
		switch c {
		case '"':
			s.inString = true
		case '[', '{':
			s.depth++
			if s.depth > s.max {
				s.max = s.depth
			}
		case ']', '}':
			if s.depth > 0 {
				s.depth--
			}
		}
	}
	return s.max
}

// Depth returns the greatest nesting depth of a JSON text: 0 for a scalar,
// 1 for a flat array or object.
func Depth(b []byte) int {
	var s DepthScanner
	return s.Write(b)
}

func (r Rules) maxDepth() int {
	if r.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return r.MaxDepth
}
