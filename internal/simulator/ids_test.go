package simulator_test

import (
	"sort"
	"testing"

	"github.com/callops/millis-operator/internal/simulator"
)

func TestMaskPhone(t *testing.T) {
	tests := []struct{ in, want, reason string }{
		{"+15550100123", "+1555***0123", "first 5 characters, ***, last 4"},
		{"+442071234567", "+4420***4567", "the same rule for any length"},
		{"+1555012", "***", "too short to show anything safely"},
	}
	for _, tt := range tests {
		if got := simulator.MaskPhone(tt.in); got != tt.want {
			t.Errorf("MaskPhone(%q) = %q, want %q: %s", tt.in, got, tt.want, tt.reason)
		}
	}
}

func TestPushIDsUniqueAndOrderedWithinOneMillisecond(t *testing.T) {
	ids := simulator.PushIDs(5000, 1_795_000_000_000)
	seen := map[string]bool{}
	for _, id := range ids {
		if len(id) != 20 || id[0] != '-' || seen[id] {
			t.Fatalf("id %q: want 20 characters, a leading '-', and no repeats", id)
		}
		seen[id] = true
	}
	// The push-id alphabet is in ASCII order, so byte order is time order.
	if !sort.StringsAreSorted(ids) {
		t.Error("ids made in the same millisecond must still sort in creation order")
	}
}
