package campaign

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func BenchmarkParseCSV100k(b *testing.B) {
	const rows = 100_000
	zones := []string{"America/New_York", "", "Europe/Berlin", "Asia/Kolkata", "America/Los_Angeles"}
	plans := []string{"free", "gold", "silver"}
	var sb strings.Builder
	sb.WriteString("phone,timeZone,userName,plan\n")
	for i := range rows {
		fmt.Fprintf(&sb, "+1555%07d,%s,user %d,%s\n", i, zones[i%len(zones)], i, plans[i%len(plans)])
	}
	in := sb.String()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		recipients, problems, err := ParseCSV("configmap/bench/recipients.csv", strings.NewReader(in))
		if err != nil || len(recipients) != rows || len(problems) != 0 {
			b.Fatalf("ParseCSV: %d recipients, %d problems, error %v; want %d, 0, nil", len(recipients), len(problems), err, rows)
		}
	}
	runtime.ReadMemStats(&after)
	perRow := float64(b.N * rows)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/perRow, "ns/row")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/perRow, "allocs/row")
}

func BenchmarkNextOpen(b *testing.B) {
	ny := mustLoc(b, "America/New_York")
	cases := []struct {
		name string
		t    time.Time
	}{
		{"open now", time.Date(2026, 3, 10, 10, 0, 0, 0, ny)},
		{"later today", time.Date(2026, 3, 10, 7, 0, 0, 0, ny)},
		{"Friday evening to Monday", time.Date(2026, 3, 13, 18, 0, 0, 0, ny)},
		{"across spring-forward", time.Date(2026, 3, 7, 12, 0, 0, 0, ny)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := NextOpen(c.t, ny, officeHours); !ok {
					b.Fatal("NextOpen: none found")
				}
			}
		})
	}
}
