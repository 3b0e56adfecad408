package core

import (
	"fmt"
	"math"
	"time"
)

// ParseHandoff decodes the handoff script's reply: status 0 (not held),
// 1 (released), or 2 with the new holder's fence.
func ParseHandoff(reply any) (status, fence int64, err error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return 0, 0, fmt.Errorf("%w: handoff returned %T %v", ErrReply, reply, reply)
	}
	status, ok = arr[0].(int64)
	switch {
	case !ok:
	case (status == 0 || status == 1) && len(arr) == 1:
		return status, 0, nil
	case status == 2 && len(arr) == 2:
		if f, ok := arr[1].(int64); ok && f > 0 {
			return 2, f, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: handoff returned %v", ErrReply, arr)
}

// ParseAcquire decodes the acquire script's reply for a group of n keys:
// the fences on success, or the 1-based index of the held key and its PTTL.
// A positive integer f stands for the fences f, f+1, …, f+n-1 (acquire.lua's
// reply when every key was free); for one key a negative integer is
// acquire1's busy reply, -2 - pttl.
func ParseAcquire(reply any, n int) (fences []int64, busy int, pttl time.Duration, err error) {
	fences, busy, pttl, err = appendAcquire(nil, reply, n)
	if busy > 0 || err != nil {
		fences = nil
	}
	return fences, busy, pttl, err
}

// appendAcquire is ParseAcquire appending the fences to dst; on failure or
// busy it returns dst unchanged in length.
func appendAcquire(dst []int64, reply any, n int) (fences []int64, busy int, pttl time.Duration, err error) {
	n0 := len(dst)
	if r, ok := reply.(int64); ok {
		switch {
		case r > 0 && n >= 1 && r <= math.MaxInt64-int64(n-1):
			for i := range int64(n) {
				dst = append(dst, r+i)
			}
			return dst, 0, 0, nil
		case n != 1:
		case r == -1:
			return dst, 1, -1, nil // held without a TTL
		case r < -1:
			return dst, 1, time.Duration(-r-2) * time.Millisecond, nil
		}
		return dst, 0, 0, fmt.Errorf("%w: acquire returned %d", ErrReply, r)
	}
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return dst, 0, 0, fmt.Errorf("%w: acquire returned %T %v", ErrReply, reply, reply)
	}
	status, ok := arr[0].(int64)
	if !ok {
		return dst, 0, 0, fmt.Errorf("%w: acquire status %T %v", ErrReply, arr[0], arr[0])
	}
	switch status {
	case 1:
		if len(arr) != n+1 {
			return dst, 0, 0, fmt.Errorf("%w: acquire returned %d fences for %d keys", ErrReply, len(arr)-1, n)
		}
		for i := 0; i < n; i++ {
			f, ok := arr[i+1].(int64)
			if !ok || f <= 0 {
				return dst[:n0], 0, 0, fmt.Errorf("%w: fence %v", ErrReply, arr[i+1])
			}
			dst = append(dst, f)
		}
		return dst, 0, 0, nil
	case 0:
		if len(arr) != 3 {
			return dst, 0, 0, fmt.Errorf("%w: acquire busy reply %v", ErrReply, arr)
		}
		ms, ok1 := arr[1].(int64)
		idx, ok2 := arr[2].(int64)
		if !ok1 || !ok2 || idx < 1 || idx > int64(n) {
			return dst, 0, 0, fmt.Errorf("%w: acquire busy reply %v", ErrReply, arr)
		}
		pttl = time.Duration(ms) * time.Millisecond
		if ms < 0 {
			pttl = time.Duration(ms) // -1: no TTL, -2: gone since; kept negative
		}
		return dst, int(idx), pttl, nil
	}
	return dst, 0, 0, fmt.Errorf("%w: acquire status %d", ErrReply, status)
}

// ParsePair decodes a two-integer script reply.
func ParsePair(reply any) (a, b int64, err error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return 0, 0, fmt.Errorf("%w: %T %v", ErrReply, reply, reply)
	}
	a, ok1 := arr[0].(int64)
	b, ok2 := arr[1].(int64)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("%w: %v", ErrReply, arr)
	}
	return a, b, nil
}
