// Package campaign holds the pure logic behind the CallCampaign controller:
// reading recipient lists and do-not-call lists, calling windows in each
// recipient's local time, and retry planning. Nothing here talks to the
// Kubernetes API or to Millis, so every rule can be tested without a cluster
// and without placing a (billed) phone call.
package campaign
