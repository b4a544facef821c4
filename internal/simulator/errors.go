package simulator

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// The Millis backend is FastAPI, so errors are {"detail": ...}: a string for
// HTTPException, a list of pydantic errors for 422.

// validationError is one entry of a FastAPI 422 "detail" list. Only the
// three fields the OpenAPI ValidationError schema requires are sent.
type validationError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

type detailString struct {
	Detail string `json:"detail"`
}

type detailList struct {
	Detail []validationError `json:"detail"`
}

// Pydantic v2 messages, reused so clients see the real wording.
const (
	msgMissing   = "Field required"
	msgString    = "Input should be a valid string"
	msgDict      = "Input should be a valid dictionary"
	msgBool      = "Input should be a valid boolean"
	msgList      = "Input should be a valid list"
	msgModelAttr = "Input should be a valid dictionary or object to extract fields from"
)

func errMissing(loc ...any) validationError {
	return validationError{Loc: loc, Msg: msgMissing, Type: "missing"}
}

// writeJSON writes v as compact JSON without HTML escaping and without the
// trailing newline json.Encoder adds, which is what FastAPI sends.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"detail":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, detailString{Detail: detail})
}

func writeValidation(w http.ResponseWriter, errs []validationError) {
	writeJSON(w, http.StatusUnprocessableEntity, detailList{Detail: errs})
}

func writeNotFound(w http.ResponseWriter) { writeDetail(w, http.StatusNotFound, "Not found") }

func writeSuccess(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, struct {
		Success bool `json:"success"`
	}{true})
}

// authorized checks the raw private key in the "authorization" header in
// constant time against every configured key.
func (s *Server) authorized(r *http.Request) bool {
	got := r.Header.Get("Authorization")
	if s.cfg.AcceptBearer {
		if k, ok := strings.CutPrefix(got, "Bearer "); ok {
			got = k
		}
	}
	if got == "" {
		return false
	}
	ok := 0
	for _, k := range s.cfg.APIKeys {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(k))
	}
	return ok == 1
}
