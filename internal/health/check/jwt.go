package check

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// errNoExp reports a token whose payload has no exp claim.
var errNoExp = errors.New("has no exp claim")

// maxExp is the last second of year 9999: an exp beyond it is not a date a
// token issuer meant.
const maxExp = 253402300799

// jwtExpiry returns the time in the exp claim of a JWT in compact form.
//
// Only the payload is decoded; the signature is not verified. egoagent does not
// hold the issuer's keys and does not need them: the file came from a source it
// already trusts (1Password, or Codex itself), and exp only tells it whether
// the file is still worth installing. A forged exp could only mislead the
// holder of the file about their own credentials; the service checks the
// signature when the token is used.
//
// Errors describe the defect without quoting the token.
func jwtExpiry(token string) (time.Time, error) {
	claims, err := jwtPayload(token)
	if err != nil {
		return time.Time{}, err
	}
	raw, ok := claims["exp"]
	if !ok || string(raw) == "null" {
		return time.Time{}, errNoExp
	}
	// json.Number would also take a quoted "123"; a NumericDate is a bare number.
	var n json.Number
	if c := raw[0]; (c != '-' && (c < '0' || c > '9')) || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, errors.New("has an exp claim that is not a number")
	}
	// RFC 7519 makes exp a NumericDate, which may carry fractions of a second;
	// issuers normally write an integer, so try that first to keep precision.
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i <= 0 || i > maxExp {
			return time.Time{}, errors.New("has an exp claim outside the years 1970 to 9999")
		}
		return time.Unix(i, 0).UTC(), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || f <= 0 || f > maxExp {
		return time.Time{}, errors.New("has an exp claim outside the years 1970 to 9999")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// jwtPayload decodes the claims of a compact JWT (header.payload.signature)
// into raw JSON values, one per claim.
func jwtPayload(token string) (map[string]json.RawMessage, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("is not a JWT (want three dot-separated parts)")
	}
	// base64url without padding per RFC 7515; tolerate padding anyway.
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, errors.New("is not a JWT (its payload is not base64url)")
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || payload[0] != '{' {
		return nil, errors.New("is not a JWT (its payload is not a JSON object)")
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, errors.New("is not a JWT (its payload is not a JSON object)")
	}
	return claims, nil
}
