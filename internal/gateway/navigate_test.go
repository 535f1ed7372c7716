package gateway

import (
	"context"
	"time"

	"github.com/chromedp/chromedp"
)

// clickThrough clicks sel, a button or link that loads another page, and
// returns once the browser shows the new document with wait visible.
//
// Waiting for wait alone is not enough: while the click's navigation is
// still on its way, the old page is the one queried, and an element it
// shares with the new page (a heading, a form, a button) is found there;
// the next action then types into or clicks a page that is going away.
// So the old document is marked before the click, and the new one is the
// first document without the mark whose loading is complete.
func clickThrough(sel, wait string) chromedp.ActionFunc {
	return func(ctx context.Context) error {
		if err := chromedp.Evaluate(`window.__sealpostOld = true`, nil).Do(ctx); err != nil {
			return err
		}
		if err := chromedp.Click(sel, chromedp.ByQuery).Do(ctx); err != nil {
			return err
		}
		for {
			// Each look is bounded: during the navigation the old page's
			// context goes away under an evaluation.
			var fresh bool
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := chromedp.Evaluate(`window.__sealpostOld === undefined && document.readyState === "complete"`, &fresh).Do(lctx)
			cancel()
			if err == nil && fresh {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		return chromedp.WaitVisible(wait, chromedp.ByQuery).Do(ctx)
	}
}
