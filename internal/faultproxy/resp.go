package faultproxy

// maxName is the longest command name reqScanner keeps; longer names are
// truncated (no command the filters look for is that long).
const maxName = 32

type scanState uint8

const (
	scanStart    scanState = iota // before a request
	scanArrayLen                  // in "*<n>\r\n"
	scanBulkHdr                   // expecting '$'
	scanBulkLen                   // in "$<n>\r\n"
	scanBulkData                  // in a bulk string and its CRLF
	scanInline                    // in an inline command line
	scanLost                      // the stream is not RESP: stop looking
)

// reqScanner finds where each request ends in a client's byte stream, and
// its command name, so that a request can be matched by name and cut at its
// last byte. It understands what clients send: RESP arrays of bulk strings
// and inline commands ("PING\r\n"). Its state carries over between chunks,
// so requests may be split anywhere. On bytes that are neither it gives up
// for the rest of the connection (no request matches any more); Redis would
// close such a connection anyway.
type reqScanner struct {
	state scanState
	num   int64  // the number being read in a length line
	args  int64  // bulk strings still to come in the current array
	bulk  int64  // bytes of the current bulk string (with its CRLF) still to come
	first bool   // the current bulk string is the command name
	named bool   // an inline command's name is complete
	name  []byte // the command name so far, at most maxName bytes
}

// next consumes b up to and including the last byte of the first request
// that ends in b. It returns how many bytes it consumed, whether a request
// ended there and, if so, its command name (as sent; compare it without
// regard to case). The name is only valid until the next call.
func (s *reqScanner) next(b []byte) (n int, done bool, name []byte) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case scanStart:
			switch c {
			case '*':
				s.state, s.num = scanArrayLen, 0
			case '\r', '\n': // blank lines between requests are allowed
			case ' ', '\t':
				s.state, s.named, s.name = scanInline, false, s.name[:0]
			default:
				s.state, s.named, s.name = scanInline, false, append(s.name[:0], c)
			}
		case scanArrayLen, scanBulkLen:
			switch {
			case c >= '0' && c <= '9':
				s.num = s.num*10 + int64(c-'0')
				if s.num > 1<<40 {
					s.state = scanLost
				}
			case c == '-' || c == '\r': // "*-1" (a null array, ignored by servers)
			case c == '\n':
				if s.state == scanArrayLen {
					s.args, s.first, s.name = s.num, true, s.name[:0]
					if s.args <= 0 {
						s.state = scanStart
						return i + 1, true, s.name
					}
					s.state = scanBulkHdr
				} else {
					s.bulk, s.state = s.num+2, scanBulkData
				}
			default:
				s.state = scanLost
			}
		case scanBulkHdr:
			if c != '$' {
				s.state = scanLost
				continue
			}
			s.state, s.num = scanBulkLen, 0
		case scanBulkData:
			k := min(int64(len(b)-i), s.bulk)
			if s.first {
				data := min(k, max(s.bulk-2, 0)) // not the CRLF
				if room := int64(maxName - len(s.name)); data > room {
					data = room
				}
				if data > 0 {
					s.name = append(s.name, b[i:i+int(data)]...)
				}
			}
			s.bulk -= k
			i += int(k) - 1
			if s.bulk == 0 {
				s.first = false
				if s.args--; s.args == 0 {
					s.state = scanStart
					return i + 1, true, s.name
				}
				s.state = scanBulkHdr
			}
		case scanInline:
			switch c {
			case '\n':
				s.state = scanStart
				return i + 1, true, s.name
			case ' ', '\t', '\r':
				s.named = len(s.name) > 0 // leading blanks are skipped
			default:
				if !s.named && len(s.name) < maxName {
					s.name = append(s.name, c)
				}
			}
		case scanLost:
			return len(b), false, nil
		}
	}
	return len(b), false, nil
}
