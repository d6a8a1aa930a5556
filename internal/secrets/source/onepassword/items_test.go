package onepassword

import (
	"context"
	"testing"
	"time"

	onepassword "github.com/1password/onepassword-sdk-go"
)

// batchAnswer stands in for the SDK's Items().GetAll with a fixed answer,
// as the real SDK gives it when the service leaves an item out: one entry
// per item returned, in the service's order, or error entries without IDs.
type batchAnswer struct {
	onepassword.ItemsAPI
	answers []onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]
}

func (b batchAnswer) GetAll(context.Context, string, []string) (onepassword.ItemsGetAllResponse, error) {
	return onepassword.ItemsGetAllResponse{IndividualResponses: b.answers}, nil
}

func item(id string) onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError] {
	return onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]{Content: &onepassword.Item{ID: id, Title: "t-" + id}}
}

// Batch answers are matched to the request by item ID, never by position.
func TestBatchAnswersMatchedByID(t *testing.T) {
	notFound := onepassword.NewItemsGetAllErrorTypeVariantItemNotFound()
	for name, tc := range map[string]struct {
		ids     []string
		answers []onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]
		want    map[string]Class // "" means the item itself
	}{
		"shorter, reordered": {
			ids:     []string{"a", "gone", "b"},
			answers: append([]onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]{}, item("b"), item("a")),
			want:    map[string]Class{"a": "", "b": "", "gone": ClassNotFound},
		},
		"one error, out of place": {
			ids: []string{"a", "gone"},
			answers: []onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]{
				{Error: &notFound}, item("a")},
			want: map[string]Class{"a": "", "gone": ClassNotFound},
		},
		"an item not asked for": {
			ids:     []string{"a"},
			answers: append([]onepassword.Response[onepassword.Item, onepassword.ItemsGetAllError]{}, item("x"), item("a")),
			want:    map[string]Class{"a": ""},
		},
	} {
		t.Run(name, func(t *testing.T) {
			o := &Client{timeout: time.Second, scrub: &scrubber{}}
			l := &locator{o: o, c: &onepassword.Client{ItemsAPI: batchAnswer{answers: tc.answers}}}
			got, err := l.getAll(context.Background(), "v", tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d answers for %d items: %v", len(got), len(tc.want), got)
			}
			for id, class := range tc.want {
				r := got[id]
				switch {
				case class == "" && (r.item == nil || r.item.ID != id):
					t.Errorf("%s: %+v, want the item", id, r)
				case class != "" && (r.err == nil || r.err.Class != class):
					t.Errorf("%s: %+v, want %s", id, r, class)
				}
			}
		})
	}
}
