// Package redact keeps personal data and secrets out of logs, events and
// error messages.
package redact

// Phone masks a phone number for logs: the first five and last four
// characters stay, the rest becomes "***" (+15550100002 -> +1555***0002).
// Short or empty inputs are masked entirely.
func Phone(p string) string {
	if len(p) < 10 {
		if p == "" {
			return ""
		}
		return "***"
	}
	return p[:5] + "***" + p[len(p)-4:]
}
