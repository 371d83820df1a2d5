package gce

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// operation is a long-running operation. Its action is applied when it is
// scheduled (at once, or at applyAt under a slow-operation fault); it is
// DONE once applied and doneWhen (if any) holds: resize and its kin are
// DONE when scheduled, as Google's are, while deleting a group or a VM is
// DONE when it is gone.
type operation struct {
	project  string
	scope    string // "regions", "zones" or "global"
	where    string // the region or zone
	name     string
	id       uint64
	opType   string
	target   string // targetLink
	targetID uint64
	status   string
	insert   time.Time
	end      time.Time
	applyAt  time.Time
	apply    func()
	applied  bool
	// doneWhen, checked under s.mu after the action was applied, says
	// whether the operation is over.
	doneWhen func() bool
}

// newOp registers an operation for r's method; apply acts (under s.mu).
func (s *Server) newOp(r *request, scope, where, opType, target string, targetID uint64, apply func(), doneWhen func() bool) *operation {
	now := time.Now()
	op := &operation{
		project: r.project, scope: scope, where: where,
		name:   fmt.Sprintf("operation-%d-%08x", now.UnixMilli(), s.rnd.Uint32()),
		id:     s.newID(),
		opType: opType, target: target, targetID: targetID,
		status: "RUNNING", insert: now, applyAt: now.Add(r.opDelay),
		apply: apply, doneWhen: doneWhen,
	}
	s.ops[r.project+"/"+op.name] = op
	s.advanceOp(op, now)
	if op.status != "DONE" {
		s.pending = append(s.pending, op)
	}
	return op
}

// advanceOp applies a due action and finishes an operation that is over.
func (s *Server) advanceOp(op *operation, now time.Time) {
	if op.status == "DONE" {
		return
	}
	if !op.applied && !now.Before(op.applyAt) {
		op.applied = true
		if op.apply != nil {
			op.apply()
		}
		// Scheduled means the group's managed instances already show
		// the action (CREATING, DELETING) when the operation is DONE.
		for _, g := range s.sortedGroups() {
			s.reconcile(g, now)
		}
	}
	if op.applied && (op.doneWhen == nil || op.doneWhen()) {
		op.status = "DONE"
		op.end = now
	}
}

func (op *operation) json() map[string]any {
	base := link(op.project)
	out := map[string]any{
		"kind":          "compute#operation",
		"id":            strconv.FormatUint(op.id, 10),
		"name":          op.name,
		"operationType": op.opType,
		"targetLink":    op.target,
		"status":        op.status,
		"user":          "gce-fake@example.com",
		"progress":      0,
		"insertTime":    stamp(op.insert),
		"startTime":     stamp(op.insert),
	}
	if op.targetID != 0 {
		out["targetId"] = strconv.FormatUint(op.targetID, 10)
	}
	switch op.scope {
	case "global":
		out["selfLink"] = base + "/global/operations/" + op.name
	case "regions":
		out["region"] = base + "/regions/" + op.where
		out["selfLink"] = base + "/regions/" + op.where + "/operations/" + op.name
	case "zones":
		out["zone"] = base + "/zones/" + op.where
		out["selfLink"] = base + "/zones/" + op.where + "/operations/" + op.name
	}
	if op.status == "DONE" {
		out["progress"] = 100
		out["endTime"] = stamp(op.end)
	}
	return out
}

// findOp is the operation of a get or wait in its scope.
func (s *Server) findOp(r *request, scope, where string) (*operation, *apiError) {
	op := s.ops[r.project+"/"+r.path["operation"]]
	if op == nil || op.scope != scope || op.where != where {
		loc := "global"
		if scope != "global" {
			loc = scope + "/" + where
		}
		return nil, notFound(fmt.Sprintf("projects/%s/%s/operations/%s", r.project, loc, r.path["operation"]))
	}
	return op, nil
}

func opGetter(scope, param string) handler {
	return func(s *Server, r *request) (any, *apiError) {
		op, err := s.findOp(r, scope, r.path[param])
		if err != nil {
			return nil, err
		}
		return op.json(), nil
	}
}

// opWaiter answers when the operation is DONE or after two minutes (as
// Google's wait does), polling without holding the lock.
func opWaiter(scope, param string) func(s *Server, r *request) (any, *apiError) {
	return func(s *Server, r *request) (any, *apiError) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			s.mu.Lock()
			op, err := s.findOp(r, scope, r.path[param])
			var out map[string]any
			if err == nil {
				out = op.json()
			}
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if out["status"] == "DONE" || time.Now().After(deadline) {
				return out, nil
			}
			select {
			case <-r.ctx.Context().Done():
				return nil, &apiError{Code: http.StatusRequestTimeout, Reason: "canceled", Message: "the client went away"}
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}
