package check

import (
	"testing"
	"time"

	"github.com/veraticus/egoengine/internal/health/check/checktest"
)

func TestDateReadsCodexFile(t *testing.T) {
	exp := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	lr := exp.Add(-time.Hour)
	s, ok := Date(KindCodex, checktest.ChatGPT{Expires: exp, LastRefresh: lr}.JSON())
	if !ok || !s.LastRefresh.Equal(lr) || !s.AccessExp.Equal(exp) || !s.AccessIssued.Equal(lr) || !s.IDIssued.Equal(lr) {
		t.Fatalf("got %+v, %v", s, ok)
	}
	if got := s.RefreshAt(); !got.Equal(exp.Add(-5 * time.Minute)) {
		t.Fatalf("RefreshAt = %v", got)
	}
	if s.Lifetime() != time.Hour {
		t.Fatalf("Lifetime = %v", s.Lifetime())
	}
	// A long-lived access token: Codex's eight-day rule comes first.
	s.AccessExp = lr.Add(30 * 24 * time.Hour)
	if got := s.RefreshAt(); !got.Equal(lr.Add(8 * 24 * time.Hour)) {
		t.Fatalf("RefreshAt with a 30-day token = %v", got)
	}

	for name, content := range map[string][]byte{
		"API key":    checktest.APIKey(""),
		"unparsable": []byte(`{"tokens":`),
		"empty":      nil,
	} {
		if _, ok := Date(KindCodex, content); ok {
			t.Errorf("%s: dated", name)
		}
	}
	if _, ok := Date(KindJSON, checktest.ValidChatGPT()); ok || Dated(KindJSON) || !Dated(KindCodex) {
		t.Error("only the codex kind is dated")
	}
}

// The order of dates in docs/egoagent.md ("Newest wins"), a case for each
// rule and for each date that is passed over.
func TestCompare(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	var zero time.Time
	tests := []struct {
		name string
		a, b Stamp
		want Order
	}{
		{"later last_refresh wins", Stamp{LastRefresh: at(-10)}, Stamp{LastRefresh: at(-20)}, Newer},
		{"earlier last_refresh loses", Stamp{LastRefresh: at(-20)}, Stamp{LastRefresh: at(-10)}, Older},
		{"last_refresh decides over expiry", Stamp{LastRefresh: at(-10), AccessExp: at(10)}, Stamp{LastRefresh: at(-20), AccessExp: at(50)}, Newer},
		{"equal last_refresh: expiry decides", Stamp{LastRefresh: at(-10), AccessExp: at(50)}, Stamp{LastRefresh: at(-10), AccessExp: at(40)}, Newer},
		{"last_refresh on one side only: expiry decides", Stamp{LastRefresh: at(-10), AccessExp: at(40)}, Stamp{AccessExp: at(50)}, Older},
		{"no last_refresh, no expiry: ID token iat decides", Stamp{IDIssued: at(-5)}, Stamp{IDIssued: at(-50)}, Newer},
		{"every shared date equal", Stamp{LastRefresh: at(-10), AccessExp: at(50)}, Stamp{LastRefresh: at(-10), AccessExp: at(50), IDIssued: at(-10)}, Same},
		{"no date in common", Stamp{LastRefresh: at(-10)}, Stamp{AccessExp: at(50)}, Unknown},
		{"nothing dated", Stamp{}, Stamp{}, Unknown},
		{"last_refresh far in the future is not believed", Stamp{LastRefresh: at(60 * 24 * 365), AccessExp: at(10)}, Stamp{LastRefresh: at(-10), AccessExp: at(50)}, Older},
		{"a date within the skew is believed", Stamp{LastRefresh: at(4)}, Stamp{LastRefresh: at(-10)}, Newer},
		{"both in the future: neither believed", Stamp{LastRefresh: at(100)}, Stamp{LastRefresh: at(200)}, Unknown},
		{"an expiry far ahead still decides (tokens live for days)", Stamp{AccessExp: at(60 * 24 * 10)}, Stamp{AccessExp: at(60 * 24 * 9)}, Newer},
		{"an ID token issued in the future is not believed", Stamp{IDIssued: at(60)}, Stamp{IDIssued: at(-60)}, Unknown},
		{"zero times count as missing", Stamp{LastRefresh: zero, AccessExp: at(5)}, Stamp{LastRefresh: at(-1), AccessExp: at(1)}, Newer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Compare(tt.a, tt.b, now)
			if got != tt.want || why == "" {
				t.Fatalf("Compare = %v (%s), want %v", got, why, tt.want)
			}
			// The order is the same read from the other side.
			back, _ := Compare(tt.b, tt.a, now)
			if mirror := map[Order]Order{Newer: Older, Older: Newer, Same: Same, Unknown: Unknown}[tt.want]; back != mirror {
				t.Fatalf("reversed: %v, want %v", back, mirror)
			}
		})
	}
}
