package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// resp encodes args as a RESP array of bulk strings.
func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func TestReqScannerSplitAnywhere(t *testing.T) {
	big := strings.Repeat("x", 70000)
	reqs := []struct{ raw, name string }{
		{resp("HELLO", "3"), "HELLO"},
		{resp("evalsha", "abc", "1", "k", "tok"), "evalsha"},
		{"PING\r\n", "PING"},
		{resp("SET", "k", big), "SET"},
		{"\r\n" + resp("EVAL", "return 1", "0"), "EVAL"}, // a blank line first
		{"  ECHO hi there\r\n", "ECHO"},                  // inline, leading blanks skipped
		{resp("x-" + strings.Repeat("n", 50)), "x-" + strings.Repeat("n", maxName-2)},
		{resp("GET", ""), "GET"},
		{"*0\r\n", ""},
		{resp("EVALSHA_RO", "s", "0"), "EVALSHA_RO"},
	}
	var stream []byte
	var ends []int
	for _, r := range reqs {
		stream = append(stream, r.raw...)
		ends = append(ends, len(stream))
	}
	for trial := range 200 {
		var s reqScanner
		var gotEnds []int
		var gotNames []string
		pos := 0
		for pos < len(stream) {
			size := 1 + rand.IntN(40)
			if trial%3 == 0 {
				size = 1 + rand.IntN(20000)
			}
			chunk := stream[pos:min(len(stream), pos+size)]
			for off := 0; off < len(chunk); {
				n, done, name := s.next(chunk[off:])
				off += n
				if done {
					gotEnds = append(gotEnds, pos+off)
					gotNames = append(gotNames, string(name))
				}
			}
			pos += len(chunk)
		}
		if fmt.Sprint(gotEnds) != fmt.Sprint(ends) {
			t.Fatalf("trial %d: ends %v, want %v", trial, gotEnds, ends)
		}
		for i, r := range reqs {
			if gotNames[i] != r.name {
				t.Fatalf("trial %d: request %d named %q, want %q", trial, i, gotNames[i], r.name)
			}
		}
	}
}

func TestReqScannerGivesUpOnGarbage(t *testing.T) {
	var s reqScanner
	n, done, _ := s.next([]byte("*2\r\n#oops\r\n"))
	if done || n != len("*2\r\n#oops\r\n") {
		t.Fatalf("next = %d, %v; want all consumed, no request", n, done)
	}
	if _, done, _ := s.next([]byte(resp("EVAL", "x", "0"))); done {
		t.Fatal("a request was found after garbage")
	}
}
