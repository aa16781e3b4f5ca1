package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestZZRecordCost(t *testing.T) {
	ctx := context.Background()
	dsn := os.Getenv("ZZ_DSN")
	engine := os.Getenv("ZZ_ENGINE")
	st, err := Open(ctx, engine, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 62000
	c := &StageChanges{}
	for i := range n {
		c.NewMembers = append(c.NewMembers, MemberRow{CourseID: int64(1 + i/165), ModuleCode: "M1", GroupCode: fmt.Sprintf("G%d", i/16), Role: RoleStudent, CMISID: fmt.Sprintf("s%07d", i)})
	}
	if err := st.ApplyStage(ctx, c); err != nil {
		t.Fatal(err)
	}
	rows, _ := st.db.QueryContext(ctx, "SELECT id FROM cmis_groupmembers ORDER BY id")
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	var intent []AddedMember
	var audit []AuditEntry
	for i, id := range ids {
		intent = append(intent, AddedMember{ID: id, MoodleUserID: int64(5000 + i), Owned: true})
		audit = append(audit, AuditEntry{RunID: "0123456789abcdef0123456789abcdef", CourseID: int64(1 + i/165), Object: "member", IDNumber: fmt.Sprintf("cmis:M1:G%d", i/16), Name: "Group name here", UserID: int64(5000 + i), CMISID: fmt.Sprintf("s%07d", i), Action: "add", Detail: "in CMIS"})
	}
	start := time.Now()
	if err := st.RecordIntent(ctx, intent); err != nil {
		t.Fatal(err)
	}
	t.Logf("intent %v", time.Since(start))
	start = time.Now()
	err = st.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx}
		defer q.close()
		return st.updateJoin(ctx, q, TableMembers, []string{"v_uid", "v_owned"}, len(intent), func(i int) (int64, []any) {
			return intent[i].ID, []any{intent[i].MoodleUserID, intent[i].Owned}
		}, `moodleuserid = v.v_uid, owned = v.v_owned, toadd = 0, attempts = 0, last_error = '', waiting_since = NULL, waiting_runs = 0, updated_at = CURRENT_TIMESTAMP`, "")
	})
	t.Logf("record join %v %v", time.Since(start), err)
	start = time.Now()
	err = st.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx}
		defer q.close()
		return updateIDs(ctx, q, `UPDATE cmis_groupmembers SET owned = 1, toadd = 0, attempts = 0, last_error = '', waiting_since = NULL, waiting_runs = 0, updated_at = CURRENT_TIMESTAMP WHERE id IN `, ids)
	})
	t.Logf("record ids %v %v", time.Since(start), err)
	start = time.Now()
	err = st.inTx(ctx, func(tx *sql.Tx) error { return st.insertAudit(ctx, tx, audit) })
	t.Logf("audit %v %v", time.Since(start), err)
}
