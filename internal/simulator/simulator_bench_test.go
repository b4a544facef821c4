package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/callops/millis-operator/internal/simulator"
)

// BenchmarkHundredThousandCalls places 100,000 calls through the HTTP
// handler, lets them all finish, and pages through them with the cursor.
// It reports the bytes allocated per placed call (handler, request and
// recorder included), the heap still in use with all calls stored, and that
// heap per call.
func BenchmarkHundredThousandCalls(b *testing.B) {
	const n = 100_000
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"from_phone":%q,"to_phone":"+1555%07d","metadata":{"cr":"default/call-%d"}}`, fromPhone, i, i)
	}
	var allocPerCall, heapMB, heapPerCall float64
	for b.Loop() {
		clk := testingclock.NewFakeClock(t0)
		srv := simulator.New(simulator.Config{Clock: clk, Agents: []simulator.AgentSeed{simulator.SeedAgent(fromPhone)}})

		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			req := httptest.NewRequest("POST", "/start_outbound_call", strings.NewReader(bodies[i]))
			req.Header.Set("authorization", apiKey)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("call %d: %d %s", i, rec.Code, rec.Body)
			}
		}
		runtime.ReadMemStats(&after)
		allocPerCall = float64(after.TotalAlloc-before.TotalAlloc) / n

		// Every call ends in one step of the fake clock.
		clk.Step(time.Hour)
		srv.Sync()

		runtime.GC()
		runtime.ReadMemStats(&after)
		heapMB = float64(after.HeapInuse) / (1 << 20)
		heapPerCall = float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n

		seen, pages := 0, 0
		for cursor := ""; ; pages++ {
			path := "/call-logs?limit=100"
			if cursor != "" {
				path += "&start_after_ts=" + cursor
			}
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("authorization", apiKey)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			var p struct {
				Histories []struct {
					CallStatus string `json:"call_status"`
				} `json:"histories"`
				NextCursor *float64 `json:"next_cursor"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				b.Fatalf("page %d: %v", pages, err)
			}
			for _, h := range p.Histories {
				switch h.CallStatus {
				case "registered", "queued", "initiated", "ringing", "in-progress":
					b.Fatalf("page %d: call still %q after an hour", pages, h.CallStatus)
				}
			}
			seen += len(p.Histories)
			if p.NextCursor == nil {
				break
			}
			cursor = strconv.FormatFloat(*p.NextCursor, 'f', -1, 64)
		}
		if seen != n || pages != n/100-1 {
			b.Fatalf("paging saw %d calls after %d cursors, want %d after %d", seen, pages, n, n/100-1)
		}
		runtime.KeepAlive(srv)
		srv.Close()
	}
	b.ReportMetric(allocPerCall, "alloc-B/call")
	b.ReportMetric(heapPerCall, "heap-B/call")
	b.ReportMetric(heapMB, "heap-MB")
}
