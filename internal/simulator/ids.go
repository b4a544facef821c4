package simulator

import (
	"math/rand/v2"
)

// Millis ids (agents, sessions) look like Firebase push ids: 20 characters,
// 8 encoding the creation time in milliseconds and 12 random ones, from an
// alphabet that sorts like the time. Ids made now start with '-'.
const pushChars = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

type pushIDGen struct {
	rng      *rand.Rand
	lastMs   int64
	lastRand [12]byte
}

// next returns a new id for the time ms. Within one millisecond (or when
// the clock goes backwards) it increments the random part, as Firebase does,
// so ids stay unique and ordered.
func (g *pushIDGen) next(ms int64) string {
	if ms <= g.lastMs {
		ms = g.lastMs
		i := len(g.lastRand) - 1
		for ; i >= 0 && g.lastRand[i] == 63; i-- {
			g.lastRand[i] = 0
		}
		if i >= 0 {
			g.lastRand[i]++
		}
	} else {
		for i := range g.lastRand {
			g.lastRand[i] = byte(g.rng.IntN(64))
		}
	}
	g.lastMs = ms
	var b [20]byte
	for i := 7; i >= 0; i-- {
		b[i] = pushChars[ms%64]
		ms /= 64
	}
	for i, r := range g.lastRand {
		b[8+i] = pushChars[r]
	}
	return string(b[:])
}

// newPushIDLocked returns an id not used by any agent or session. s.mu must
// be held.
func (s *Server) newPushIDLocked() string {
	for {
		id := s.ids.next(s.clock.Now().UnixMilli())
		if _, ok := s.agents[id]; ok {
			continue
		}
		if _, ok := s.byID[id]; ok {
			continue
		}
		return id
	}
}

// newCallIDLocked returns a Twilio-CallSid-like id ("CA" + 32 hex digits):
// the docs do not say what call_id is, and the likeliest reading is the
// telephony provider's call id.
func (s *Server) newCallIDLocked() string {
	const hex = "0123456789abcdef"
	var b [34]byte
	b[0], b[1] = 'C', 'A'
	hi, lo := s.ids.rng.Uint64(), s.ids.rng.Uint64()
	for i := 0; i < 16; i++ {
		b[2+i] = hex[(hi>>(60-4*i))&0xf]
		b[18+i] = hex[(lo>>(60-4*i))&0xf]
	}
	return string(b[:])
}

// maskPhone hides the middle of a phone number for logs: +1555***0123.
func maskPhone(p string) string {
	if len(p) <= 9 {
		return "***"
	}
	return p[:5] + "***" + p[len(p)-4:]
}
