package testenv

import (
	"net/http"
	"runtime"
	"strconv"
)

// Flood answers 200 with prefix and then filler up to n bytes, as a hostile endpoint would:
// a prefix such as `{"token":"` keeps a streaming JSON or XML decoder reading. With declare
// the Content-Length says n, else the body is chunked. It stops when the client goes away.
func Flood(w http.ResponseWriter, prefix string, n int64, declare bool) {
	if declare {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(prefix)); err != nil {
		return
	}
	n -= int64(len(prefix))
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'A'
	}
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		n -= k
	}
}

// Allocated returns the bytes the process allocated while f ran (runtime.MemStats.TotalAlloc):
// what a hostile answer cost, whether or not it is still live. Run it outside parallel tests.
// Under the race detector (Race) the count is about twice as large: instrumented code misses
// the compiler's append(nil, make(...)...) idiom, so io.ReadAll allocates each chunk twice.
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
