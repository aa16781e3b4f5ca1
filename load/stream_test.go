package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// recorder stands between the client and the simulator, on loopback: it
// notes the function of every request in the order they start, and the
// most requests it had in flight at once. A request hold picks waits
// until a request of function release comes (or a while: timedOut).
type recorder struct {
	url     string
	hold    func(url.Values) bool
	release string

	mu       sync.Mutex
	calls    []string
	inFlight int
	most     int
	released chan struct{}
	once     sync.Once
	timedOut bool
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	rec := &recorder{released: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if form.Get("wsfunction") == rec.release && rec.release != "" {
			rec.once.Do(func() { close(rec.released) })
		}
		if rec.hold != nil && rec.hold(form) {
			select {
			case <-rec.released:
			case <-time.After(10 * time.Second):
				rec.mu.Lock()
				rec.timedOut = true
				rec.mu.Unlock()
			}
		}
		rec.mu.Lock()
		rec.calls = append(rec.calls, form.Get("wsfunction"))
		rec.inFlight++
		rec.most = max(rec.most, rec.inFlight)
		rec.mu.Unlock()
		defer func() {
			rec.mu.Lock()
			rec.inFlight--
			rec.mu.Unlock()
		}()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rec.url = srv.URL
	return rec
}

// TestAdditionsOverlapEnrolmentReads: on a first load of many courses,
// members are added to the courses whose enrolments have been read while
// the others' are still being read; the requests in flight never pass
// load.concurrency, whichever part of the load sends them; and the run
// carries out exactly the plan its dry run printed.
func TestAdditionsOverlapEnrolmentReads(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		const courses, groups, members, concurrency = 16, 10, 3, 2
		sim := moodlesim.New(moodlesim.Options{Token: token, ShowIdnumber: true, MaxInputVars: 20})
		base, err := sim.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		rec := newRecorder(t, base)
		mc, err := moodle.New(moodle.Options{URL: rec.url, Token: token, MaxInputVars: 20, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if perWave := 4 * mc.Capacity(moodle.VarsPerReadByID); courses*groups < 2*perWave {
			t.Fatalf("%d groups make less than two waves of %d: the test needs several batches", courses*groups, perWave)
		}
		st := storetest.Open(t, engine)
		gen, err := st.BeginExtract(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		var grows, mrows [][]string
		var ids []int
		for c := 1; c <= courses; c++ {
			course := sim.AddCourse(moodlesim.Course{ShortName: fmt.Sprintf("C%02d", c)})
			ids = append(ids, course)
			module := fmt.Sprintf("MOD%02d", c)
			for g := 1; g <= groups; g++ {
				code := fmt.Sprintf("G%02d", g)
				grows = append(grows, []string{module, code, "Module", "Group " + code})
				for m := 1; m <= members; m++ {
					idn := fmt.Sprintf("%02d%02d%02d", c, g, m)
					if err := sim.Enrol(course, sim.AddUser(moodlesim.User{Username: "u" + idn, IDNumber: idn})); err != nil {
						t.Fatal(err)
					}
					mrows = append(mrows, []string{module, code, idn})
				}
			}
			if err := st.UpsertMapping(ctx, store.Mapping{CourseID: int64(course), ModuleCode: module}); err != nil {
				t.Fatal(err)
			}
		}
		for tbl, rows := range map[store.DumpTable][][]string{store.ModuleGroups: grows, store.GroupMembers: mrows} {
			if _, err := gen.Insert(ctx, tbl, rows); err != nil {
				t.Fatal(err)
			}
		}
		if err := gen.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := stage.Run(ctx, st, stage.Options{}, quiet()); err != nil {
			t.Fatal(err)
		}

		opts := load.Options{RunID: "t", Concurrency: concurrency}
		dry, err := load.MakePlan(ctx, st, mc, opts, quiet())
		if err != nil {
			t.Fatal(err)
		}
		// The read of the last course's enrolments is held until members
		// are added (to the other courses), or 10 s.
		last := strconv.Itoa(ids[courses-1])
		rec.hold = func(f url.Values) bool {
			return f.Get("wsfunction") == moodle.FnEnrolledUsers && f.Get("courseid") == last
		}
		rec.release = moodle.FnAddMembers
		res, err := load.Run(ctx, st, mc, opts, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if res.MembersAdded != courses*groups*members || len(res.Failures) != 0 {
			t.Fatalf("load: %+v, failures %+v", res.Map(), res.Failures)
		}
		got, want := planItems(t, res.Plan), planItems(t, dry)
		for i := range max(len(got), len(want)) {
			if i >= len(got) || i >= len(want) || got[i] != want[i] {
				t.Errorf("the run's plan (%d items) is not its dry run's (%d): item %d differs:\nrun: %v\ndry: %v", len(got), len(want), i, got[i:min(i+1, len(got))], want[i:min(i+1, len(want))])
				break
			}
		}
		if rec.timedOut {
			t.Error("no member was added while the last course's enrolments were being read: the additions waited for every read")
		}
		if rec.most > concurrency {
			t.Errorf("%d requests in flight at once, load.concurrency is %d", rec.most, concurrency)
		}
	})
}

// planItems are a plan's items, in JSON, without what the run fills in:
// outcomes, and the ids of the groups it created (in their creates and
// assignments).
func planItems(t *testing.T, p *load.Plan) []string {
	t.Helper()
	var items []string
	for _, cp := range p.Courses {
		for _, list := range [][]*load.Item{cp.Items, cp.Held} {
			for _, it := range list {
				c := *it
				c.Outcome, c.Note = "", ""
				if c.Action == load.ActCreate || c.Action == load.ActAssign {
					c.MoodleID = 0
				}
				b, err := json.Marshal(c)
				if err != nil {
					t.Fatal(err)
				}
				items = append(items, string(b))
			}
		}
	}
	return items
}
