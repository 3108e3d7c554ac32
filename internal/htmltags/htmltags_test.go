package htmltags

import (
	"reflect"
	"testing"
)

func TestStartTags(t *testing.T) {
	doc := `<!DOCTYPE html><html lang=en><!-- <img src=x> --><p class="a b" hidden>x &lt;img src=x onerror=y&gt; 1 < 2</p>` +
		`<script>if (a<b) { s = "<img src=x>"; }</script><IMG SRC='x' onerror=alert(1) /><title><b></title><svg><rect/></svg>`
	got, err := StartTags(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tag{
		{Name: "html", Attrs: []Attr{{"lang", "en"}}},
		{Name: "p", Attrs: []Attr{{"class", "a b"}, {"hidden", ""}}},
		{Name: "script"},
		{Name: "img", Attrs: []Attr{{"src", "x"}, {"onerror", "alert(1)"}}},
		{Name: "title"},
		{Name: "svg"},
		{Name: "rect"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("StartTags =\n%+v\nwant\n%+v", got, want)
	}
	for _, bad := range []string{`<p class="x`, `<script>x`, `<!-- x`, `<p`} {
		if _, err := StartTags(bad); err == nil {
			t.Errorf("StartTags(%q): no error", bad)
		}
	}
}

func FuzzStartTags(f *testing.F) {
	f.Add(`<p class="a">x</p><script>1<2</script>`)
	f.Add(`<img/src=x/onerror=alert(1)>`)
	f.Fuzz(func(t *testing.T, doc string) {
		tags, _ := StartTags(doc) // must not panic or loop
		for _, tg := range tags {
			if tg.Name == "" {
				t.Fatalf("a tag with no name in %q", doc)
			}
		}
	})
}
