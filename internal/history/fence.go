package history

import "sync"

// Write is one write attempted on a fenced resource: the lock Name it was
// made under, the fencing token Fence it carried, and whether the resource
// Accepted it.
type Write struct {
	Name     string
	Fence    int64
	Accepted bool
}

// FencedRegister models a storage system that honours fencing tokens: per
// name, it accepts a write only if its token is strictly larger than every
// token it has seen (accepted) before for that name. It is safe for
// concurrent use; the zero value is ready to use.
type FencedRegister struct {
	mu       sync.Mutex
	max      map[string]int64 // largest accepted fence per name
	log      []Write
	accepted int
	rejected int
}

// Write attempts a write of name with fencing token fence. If fence is
// strictly larger than the largest token accepted so far for name (any token
// is accepted for a name never written), Write calls apply (unless nil) and
// returns true; otherwise it returns false without calling apply. The check
// and apply happen atomically under the register's lock, so apply runs for
// at most one write at a time and must not call back into the register.
// Every attempt is logged (see Writes) and counted (see Counts).
func (r *FencedRegister) Write(name string, fence int64, apply func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, seen := r.max[name]
	ok := !seen || fence > prev
	if ok {
		if r.max == nil {
			r.max = make(map[string]int64)
		}
		r.max[name] = fence
		r.accepted++
	} else {
		r.rejected++
	}
	r.log = append(r.log, Write{Name: name, Fence: fence, Accepted: ok})
	if ok && apply != nil {
		apply()
	}
	return ok
}

// Writes returns a copy of every attempted write, accepted or not, in the
// order the register decided them. Pass it to CheckFences.
func (r *FencedRegister) Writes() []Write {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Write, len(r.log))
	copy(out, r.log)
	return out
}

// Counts returns the numbers of accepted and rejected writes so far.
func (r *FencedRegister) Counts() (accepted, rejected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, r.rejected
}

// Max returns the largest fencing token accepted for name, and false if no
// write to name has been accepted.
func (r *FencedRegister) Max(name string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.max[name]
	return f, ok
}

// CheckFences checks a log of writes, in the order they took effect, and
// reports, as a FenceOrder violation, every accepted write whose token is not
// strictly larger than the token of every accepted write before it for the
// same name. Each violation names the offending write (Write, at index
// WriteIndex of writes) and the earlier accepted write with the largest
// token for that name (Prior, at PriorIndex; the first such on a tie).
// Rejected writes are ignored: rejecting is what a fenced resource should do.
func CheckFences(writes []Write) []Violation {
	type best struct {
		w Write
		i int
	}
	top := make(map[string]best)
	var out []Violation
	for i, w := range writes {
		if !w.Accepted {
			continue
		}
		prev, seen := top[w.Name]
		if seen && w.Fence <= prev.w.Fence {
			out = append(out, Violation{
				Kind: FenceOrder, Name: w.Name,
				Write: w, WriteIndex: i,
				Prior: prev.w, PriorIndex: prev.i,
			})
			continue
		}
		top[w.Name] = best{w, i}
	}
	return out
}
