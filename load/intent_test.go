package load_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
)

// Every addition reaches Moodle only after its intent (the Moodle user it
// is added as) is committed to staging, in every wave: the intent of the
// next wave is written while one wave is sent, never after its own first
// call. A proxy in front of the simulator looks up each added member's
// staged row as the call arrives. At the first call it holds staging's
// member rows for a while, so that the intents of the next waves are
// late: sending a wave without waiting for its intent shows (always on
// MariaDB; on SQLite the first wave's recording waits for the same lock,
// which can hide it).
func TestIntentCommittedBeforeEachAdd(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		const groups, members = 100, 2
		var (
			mu        sync.Mutex
			f         *fixture
			adds      int
			missing   []string
			addedUser = map[int64]bool{}
		)
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, err := url.ParseQuery(string(body))
			if err == nil && form.Get("wsfunction") == moodle.FnAddMembers {
				mu.Lock()
				if adds++; adds == 1 {
					hold(t, f)
				}
				mu.Unlock()
				for key, vals := range form {
					if !strings.HasSuffix(key, "[userid]") {
						continue
					}
					uid, _ := strconv.ParseInt(vals[0], 10, 64)
					var n int
					if err := f.st.DB().QueryRowContext(r.Context(), `SELECT COUNT(*) FROM cmis_groupmembers WHERE moodleuserid = ?`, uid).Scan(&n); err != nil || n != 1 {
						mu.Lock()
						missing = append(missing, fmt.Sprintf("user %d (staged rows with it as their Moodle user: %d, %v)", uid, n, err))
						mu.Unlock()
					}
					mu.Lock()
					addedUser[uid] = true
					mu.Unlock()
				}
			}
			f.sim.ServeHTTP(w, r)
		}))
		defer proxy.Close()
		// 20 variables a call: a read-back call reads 12 groups and a wave
		// of additions is 48 groups, so the 100 groups go in 3 waves.
		f = newFixture(t, engine, groups, members, moodlesim.Options{MaxInputVars: 20},
			func(o *moodle.Options) { o.URL = strings.TrimSuffix(proxy.URL, "/") })
		if c := f.mc.Capacity(moodle.VarsPerReadByID); c != 12 {
			t.Fatalf("a read-back call reads %d groups, want 12 (the test needs several waves)", c)
		}
		res := f.load()
		if res.MembersAdded != groups*members {
			t.Fatalf("added %d members, want %d: %+v", res.MembersAdded, groups*members, res.Map())
		}
		if len(missing) > 0 {
			t.Fatalf("%d of %d additions were sent before their intent was committed, e.g. %s", len(missing), len(addedUser), missing[0])
		}
		if len(addedUser) != groups*members || adds < 3 {
			t.Fatalf("the proxy saw %d users added in %d calls, want %d users", len(addedUser), adds, groups*members)
		}
	})
}

// hold locks every staged membership (and, on SQLite, the database's
// write lock) for half a second, as a slow staging would, and returns at
// once.
func hold(t *testing.T, f *fixture) {
	tx, err := f.st.DB().BeginTx(context.Background(), nil)
	if err == nil {
		_, err = tx.Exec(`UPDATE cmis_groupmembers SET toadd = toadd`)
	}
	if err != nil {
		t.Errorf("hold staging: %v", err)
		return
	}
	time.AfterFunc(500*time.Millisecond, func() { _ = tx.Rollback() })
}
