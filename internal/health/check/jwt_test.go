package check

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// rawJWT builds a token around a literal payload, so that payloads no JSON
// encoder would produce (floats, strings for exp, garbage) can be tried.
func rawJWT(payload string) string {
	b := base64.RawURLEncoding.EncodeToString
	return b([]byte(`{"alg":"RS256"}`)) + "." + b([]byte(payload)) + "." + b([]byte("sig"))
}

func TestJWTExpiry(t *testing.T) {
	b := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name    string
		token   string
		want    time.Time
		wantErr string // substring; "" means success
	}{
		{"integer exp", rawJWT(`{"exp":1900000000,"sub":"x"}`), time.Unix(1900000000, 0), ""},
		{"float exp keeps the fraction", rawJWT(`{"exp":1900000000.5}`), time.Unix(1900000000, 5e8), ""},
		{"exponent notation", rawJWT(`{"exp":1.9e9}`), time.Unix(1900000000, 0), ""},
		{"padded payload", b([]byte(`{}`)) + "." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1900000000}`)) + ".c2ln", time.Unix(1900000000, 0), ""},
		{"empty signature is still three parts", rawJWT(`{"exp":1900000000}`)[:len(rawJWT(`{"exp":1900000000}`))-4], time.Unix(1900000000, 0), ""},
		{"missing exp", rawJWT(`{"sub":"x"}`), time.Time{}, "no exp claim"},
		{"null exp", rawJWT(`{"exp":null}`), time.Time{}, "no exp claim"},
		{"exp as a string", rawJWT(`{"exp":"1900000000"}`), time.Time{}, "not a number"},
		{"exp as an object", rawJWT(`{"exp":{"t":1}}`), time.Time{}, "not a number"},
		{"exp zero", rawJWT(`{"exp":0}`), time.Time{}, "outside the years"},
		{"exp negative float", rawJWT(`{"exp":-5.5}`), time.Time{}, "outside the years"},
		{"exp past year 9999", rawJWT(`{"exp":1e20}`), time.Time{}, "outside the years"},
		{"exp past int64", rawJWT(`{"exp":99999999999999999999}`), time.Time{}, "outside the years"},
		{"two parts", b([]byte(`{}`)) + "." + b([]byte(`{"exp":1}`)), time.Time{}, "three dot-separated parts"},
		{"four parts", rawJWT(`{"exp":1900000000}`) + ".x", time.Time{}, "three dot-separated parts"},
		{"not a token at all", "sk-proj-abc", time.Time{}, "three dot-separated parts"},
		{"empty", "", time.Time{}, "three dot-separated parts"},
		{"payload not base64url", "e30.!!!.c2ln", time.Time{}, "not base64url"},
		{"payload not JSON", rawJWT(`exp=1`), time.Time{}, "not a JSON object"},
		{"payload a JSON array", rawJWT(`[1900000000]`), time.Time{}, "not a JSON object"},
		{"payload truncated JSON", rawJWT(`{"exp":19`), time.Time{}, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jwtExpiry(tt.token)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("jwtExpiry: %v", err)
				}
				if !got.Equal(tt.want) {
					t.Fatalf("jwtExpiry = %v, want %v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("jwtExpiry = %v, want an error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Fatalf("error quotes the token: %q", err)
			}
		})
	}
}

func TestJWTMissingExpIsDistinguishable(t *testing.T) {
	_, err := jwtExpiry(rawJWT(`{"iat":1}`))
	if !errors.Is(err, errNoExp) {
		t.Fatalf("err = %v, want errNoExp", err)
	}
}
