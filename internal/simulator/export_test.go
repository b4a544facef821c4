package simulator

// Exports for the black-box tests in package simulator_test.

// MaskPhone is maskPhone, the log masking of phone numbers.
var MaskPhone = maskPhone

// PushIDs returns n consecutive push ids generated for the same
// millisecond, to check that they stay unique and ordered.
func PushIDs(n int, ms int64) []string {
	s := New(Config{})
	defer s.Close()
	out := make([]string, n)
	for i := range out {
		out[i] = s.ids.next(ms)
	}
	return out
}
