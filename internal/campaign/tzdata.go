package campaign

// Recipient time zones come from user data, so whether a row is valid must not
// depend on whether the operator image ships /usr/share/zoneinfo (distroless
// and scratch images do not). The embedded copy is only used when the system
// database is missing.
import _ "time/tzdata"
