package catalog

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCasesAndBookmarks(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	id, err := c.AddCase(ctx, Case{Ref: " KRPP-88/2026 ", Title: "Vloupání", Actor: "novak", Created: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddCase(ctx, Case{Ref: "KRPP-88/2026", Created: at(0)}); !errors.Is(err, ErrCaseExists) {
		t.Errorf("duplicate reference: %v, want ErrCaseExists", err)
	}
	if _, err := c.AddBookmark(ctx, Bookmark{Camera: "most", From: at(0), To: at(time.Minute), Title: "x", CaseID: 99, Created: at(0)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bookmark in an unknown case: %v, want ErrNotFound", err)
	}
	b1, err := c.AddBookmark(ctx, Bookmark{Camera: "most", From: at(time.Minute), To: at(2 * time.Minute), Title: "auto", CaseID: id, Actor: "novak", Created: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddBookmark(ctx, Bookmark{Camera: "namesti", From: at(0), To: at(time.Minute), Title: "chodec", Actor: "novak", Created: at(0)}); err != nil {
		t.Fatal(err)
	}
	inCase, err := c.Bookmarks(ctx, BookmarkQuery{CaseID: id})
	if err != nil || len(inCase) != 1 || inCase[0].ID != b1 || inCase[0].CaseID != id || inCase[0].Camera != "most" {
		t.Errorf("bookmarks of the case: %+v, %v", inCase, err)
	}
	if seen, _ := c.Bookmarks(ctx, BookmarkQuery{Cameras: []string{"namesti"}}); len(seen) != 1 || seen[0].Title != "chodec" {
		t.Errorf("bookmarks of namesti: %+v", seen)
	}
	if none, _ := c.Bookmarks(ctx, BookmarkQuery{Cameras: []string{}}); len(none) != 0 {
		t.Errorf("no visible camera found %+v", none)
	}
	if err := c.RemoveBookmark(ctx, b1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bookmark(ctx, b1); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed bookmark: %v", err)
	}
	if k, err := c.CaseByID(ctx, id); err != nil || k.Ref != "KRPP-88/2026" {
		t.Errorf("case: %+v, %v (reference trimmed)", k, err)
	}
}
