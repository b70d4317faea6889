package directory

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []struct {
		c    cursor
		kind sortKind
	}{
		{cursor{Sort: "last_name", Text: "Ånström \"x\" <&>", ID: 7}, sortText},
		{cursor{Sort: "-employee_number", Text: "", ID: 1}, sortText},
		{cursor{Sort: "created_at", Time: time.Date(2026, 12, 4, 1, 2, 3, 456789000, time.UTC).UnixMicro(), ID: 9}, sortTime},
		{cursor{Sort: "-id", ID: 1 << 62}, sortID},
		{cursor{Sort: "name", Text: strings.Repeat("&", 255), ID: 3}, sortText},
	} {
		s := encodeCursor(c.c)
		got, err := decodeCursor(s, c.c.Sort, c.kind)
		if err != nil || got != c.c {
			t.Errorf("%+v: decoded %+v, %v", c.c, got, err)
		}
	}
}

func TestDecodeCursorRefuses(t *testing.T) {
	good := encodeCursor(cursor{Sort: "last_name", Text: "Lee", ID: 5})
	for _, c := range []struct {
		name, s, sort string
		kind          sortKind
	}{
		{"empty", "", "last_name", sortText},
		{"not base64", "***", "last_name", sortText},
		{"not JSON", "bm90IGpzb24", "last_name", sortText},
		{"other sort", good, "employee_number", sortText},
		{"unknown member", encodeRaw(`{"s":"id","i":1,"x":2}`), "id", sortID},
		{"two values", encodeRaw(`{"s":"id","i":1}{"s":"id","i":2}`), "id", sortID},
		{"zero id", encodeRaw(`{"s":"id","i":0}`), "id", sortID},
		{"negative id", encodeRaw(`{"s":"id","i":-4}`), "id", sortID},
		{"text on an id sort", encodeRaw(`{"s":"id","k":"x","i":1}`), "id", sortID},
		{"time on a text sort", encodeRaw(`{"s":"name","t":5,"i":1}`), "name", sortText},
		{"no time on a time sort", encodeRaw(`{"s":"created_at","i":1}`), "created_at", sortTime},
		{"time out of range", encodeRaw(`{"s":"created_at","t":9223372036854775807,"i":1}`), "created_at", sortTime},
		{"too long", strings.Repeat("A", maxCursorLen+1), "id", sortID},
		{"NUL in the key", encodeRaw(`{"s":"name","k":"a\u0000b","i":1}`), "name", sortText},
		{"string id", encodeRaw(`{"s":"id","i":"1"}`), "id", sortID},
	} {
		_, err := decodeCursor(c.s, c.sort, c.kind)
		var fe *apperr.FieldError
		if !errors.As(err, &fe) || fe.Field != "cursor" {
			t.Errorf("%s: %v, want a field error on cursor", c.name, err)
		}
	}
}

func encodeRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// FuzzDecodeCursor: any input decodes to a cursor or a field error on
// "cursor", never a panic; a decoded cursor is valid for its sort and
// survives re-encoding.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(cursor{Sort: "last_name", Text: "Lee", ID: 5}), "last_name", 0)
	f.Add(encodeCursor(cursor{Sort: "created_at", Time: 1, ID: 5}), "created_at", 1)
	f.Add(encodeCursor(cursor{Sort: "id", ID: 5}), "id", 2)
	f.Add("", "id", 2)
	f.Add("e30", "name", 0)
	f.Fuzz(func(t *testing.T, s, sort string, k int) {
		kind := sortKind(((k % 3) + 3) % 3)
		c, err := decodeCursor(s, sort, kind)
		if err != nil {
			var fe *apperr.FieldError
			if !errors.As(err, &fe) || fe.Field != "cursor" {
				t.Fatalf("error %v is not a field error on cursor", err)
			}
			return
		}
		if c.Sort != sort || c.ID <= 0 || (kind == sortTime) != (c.Time != 0) || (kind != sortText && c.Text != "") {
			t.Fatalf("decoded an invalid cursor %+v for %s/%d", c, sort, kind)
		}
		again, err := decodeCursor(encodeCursor(c), sort, kind)
		if err != nil || again != c {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", c, again, err)
		}
	})
}
