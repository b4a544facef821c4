// Package argocd runs the operator's Argo CD health checks (the health.lua
// files under config/argocd) the way Argo CD runs a custom health check, so
// that they can be tested against real objects without an Argo CD.
package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Status is an Argo CD health status.
type Status string

// The statuses a health check may return. Argo CD orders them from best to
// worst as Healthy, Suspended, Progressing, Missing, Degraded, Unknown.
const (
	StatusHealthy     Status = "Healthy"
	StatusProgressing Status = "Progressing"
	StatusSuspended   Status = "Suspended"
	StatusDegraded    Status = "Degraded"
	StatusMissing     Status = "Missing"
	StatusUnknown     Status = "Unknown"
)

func (s Status) valid() bool {
	switch s {
	case StatusHealthy, StatusProgressing, StatusSuspended, StatusDegraded, StatusMissing, StatusUnknown:
		return true
	}
	return false
}

// Result is what a health check returns: the table {status=..., message=...}.
type Result struct {
	Status  Status `json:"status"`
	Message string `json:"message,omitempty"`
}

// invalidStatus is the message Argo CD shows for a status it does not know.
const invalidStatus = "Lua returned an invalid health status"

// Timeout bounds one run of a script, as Argo CD bounds it.
const Timeout = time.Second

// Health runs a health.lua script against obj, an object as JSON decodes it
// (or as runtime.DefaultUnstructuredConverter produces it).
//
// As in Argo CD, obj is the global `obj`, arrays are 1-based tables, and the
// script must return a table. An unknown status is not an error: Argo CD
// reports it as Unknown, and so does Health.
//
// The sandbox is Argo CD's for custom checks (resource.customizations.health
// without useOpenLibs): the base and table libraries only, so a script that
// calls string.*, math.* or os.* fails here as it would in Argo CD. The base
// functions that read files (dofile, loadfile, require, module) are removed
// as well: a health check depends on the object alone.
func Health(script []byte, obj map[string]any) (Result, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return Result{}, fmt.Errorf("open Lua library %q: %w", lib.name, err)
		}
	}
	for _, name := range []string{"dofile", "loadfile", "require", "module"} {
		L.SetGlobal(name, lua.LNil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	L.SetContext(ctx)

	value, err := toLua(L, obj)
	if err != nil {
		return Result{}, fmt.Errorf("convert the object to Lua: %w", err)
	}
	L.SetGlobal("obj", value)

	fn, err := L.Load(strings.NewReader(string(script)), "health.lua")
	if err != nil {
		return Result{}, fmt.Errorf("compile health.lua: %w", err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		return Result{}, fmt.Errorf("run health.lua: %w", err)
	}
	return fromLua(L.Get(-1))
}

// fromLua reads the returned table. Like Argo CD, which decodes the table
// as JSON, it accepts only strings in status and message.
func fromLua(v lua.LValue) (Result, error) {
	t, ok := v.(*lua.LTable)
	if !ok {
		return Result{}, fmt.Errorf("health.lua returned %s, not a table", v.Type())
	}
	var r Result
	switch s := t.RawGetString("status").(type) {
	case lua.LString:
		r.Status = Status(s)
	case *lua.LNilType:
	default:
		return Result{}, fmt.Errorf("health.lua returned a %s status, not a string", s.Type())
	}
	switch m := t.RawGetString("message").(type) {
	case lua.LString:
		r.Message = string(m)
	case *lua.LNilType:
	default:
		return Result{}, fmt.Errorf("health.lua returned a %s message, not a string", m.Type())
	}
	if !r.Status.valid() {
		return Result{Status: StatusUnknown, Message: invalidStatus}, nil
	}
	return r, nil
}

// toLua converts a JSON-shaped Go value to Lua. Maps become tables keyed by
// string, slices become arrays (tables indexed from 1), JSON null becomes
// nil (so the key is absent, as Lua has no null).
func toLua(L *lua.LState, v any) (lua.LValue, error) {
	switch v := v.(type) {
	case nil:
		return lua.LNil, nil
	case bool:
		return lua.LBool(v), nil
	case string:
		return lua.LString(v), nil
	case int:
		return lua.LNumber(v), nil
	case int32:
		return lua.LNumber(v), nil
	case int64:
		return lua.LNumber(v), nil
	case float64:
		return lua.LNumber(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		return lua.LNumber(f), nil
	case []any:
		t := L.CreateTable(len(v), 0)
		for i, item := range v {
			lv, err := toLua(L, item)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			t.RawSetInt(i+1, lv)
		}
		return t, nil
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, item := range v {
			lv, err := toLua(L, item)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	}
	return nil, fmt.Errorf("unsupported type %T", v)
}
