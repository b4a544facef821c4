package redact

import "testing"

func TestPhone(t *testing.T) {
	cases := []struct{ reason, in, want string }{
		{"US number keeps country code, area code and last four", "+15550100002", "+1555***0002"},
		{"long international number", "+919876543210", "+9198***3210"},
		{"too short to mask partially", "+12345", "***"},
		{"empty stays empty", "", ""},
	}
	for _, c := range cases {
		if got := Phone(c.in); got != c.want {
			t.Errorf("%s: Phone(%q) = %q, want %q", c.reason, c.in, got, c.want)
		}
	}
}
