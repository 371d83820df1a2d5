package gce

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The discovery document is read from the module cache, where the Go
// toolchain put google.golang.org/api for this module's build: `go list -m`
// finds the directory of the version go.mod names, offline (GOPROXY=off),
// so the fake is held to the same API description as the generated
// clients of that version, and nothing is copied into this repository.
// GCE_DISCOVERY_JSON names another file (a test of the fake itself, or a
// machine without the go command).

// discoveryModule is the Go module that ships the discovery document.
const discoveryModule = "google.golang.org/api"

var (
	docOnce sync.Once
	theDoc  *apiDoc
	docErr  error
)

// loadDoc reads and indexes compute/v1/compute-api.json once per process.
func loadDoc() (*apiDoc, error) {
	docOnce.Do(func() {
		path := os.Getenv("GCE_DISCOVERY_JSON")
		if path == "" {
			cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", discoveryModule)
			cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || strings.TrimSpace(string(out)) == "" {
				docErr = fmt.Errorf("gce fake: locating %s with go list: %v: %s", discoveryModule, err, stderr.String())
				return
			}
			path = filepath.Join(strings.TrimSpace(string(out)), "compute", "v1", "compute-api.json")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			docErr = fmt.Errorf("gce fake: reading the discovery document: %w", err)
			return
		}
		theDoc, docErr = parseDoc(data)
	})
	return theDoc, docErr
}

// apiDoc is the part of a discovery document the fake checks against.
type apiDoc struct {
	ServicePath string               `json:"servicePath"`
	Parameters  map[string]*param    `json:"parameters"`
	Resources   map[string]*resource `json:"resources"`
	Schemas     map[string]*schema   `json:"schemas"`
	methods     []*method            // every method, flattened
	byID        map[string]*method   // by id: compute.instances.get
	patterns    sync.Map             // pattern -> *regexp.Regexp
}

type resource struct {
	Methods   map[string]*method   `json:"methods"`
	Resources map[string]*resource `json:"resources"`
}

type method struct {
	ID         string            `json:"id"`
	HTTPMethod string            `json:"httpMethod"`
	Path       string            `json:"path"`
	FlatPath   string            `json:"flatPath"`
	Parameters map[string]*param `json:"parameters"`
	Request    *struct {
		Ref string `json:"$ref"`
	} `json:"request"`
	Response *struct {
		Ref string `json:"$ref"`
	} `json:"response"`
	segs []string // flatPath split on "/"
}

type param struct {
	Location string   `json:"location"`
	Type     string   `json:"type"`
	Format   string   `json:"format"`
	Pattern  string   `json:"pattern"`
	Minimum  string   `json:"minimum"`
	Maximum  string   `json:"maximum"`
	Required bool     `json:"required"`
	Repeated bool     `json:"repeated"`
	Enum     []string `json:"enum"`
}

type schema struct {
	ID                   string             `json:"id"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Ref                  string             `json:"$ref"`
	Pattern              string             `json:"pattern"`
	Properties           map[string]*schema `json:"properties"`
	Items                *schema            `json:"items"`
	AdditionalProperties *schema            `json:"additionalProperties"`
	Enum                 []string           `json:"enum"`
	Annotations          struct {
		Required []string `json:"required"`
	} `json:"annotations"`
}

func parseDoc(data []byte) (*apiDoc, error) {
	d := &apiDoc{}
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("gce fake: parsing the discovery document: %w", err)
	}
	if d.ServicePath == "" || len(d.Schemas) == 0 {
		return nil, fmt.Errorf("gce fake: the discovery document has no servicePath or schemas")
	}
	d.byID = map[string]*method{}
	var walk func(map[string]*resource)
	walk = func(rs map[string]*resource) {
		for _, r := range rs {
			for _, m := range r.Methods {
				p := m.FlatPath
				if p == "" {
					p = m.Path
				}
				m.segs = strings.Split(p, "/")
				d.methods = append(d.methods, m)
				d.byID[m.ID] = m
			}
			walk(r.Resources)
		}
	}
	walk(d.Resources)
	sort.Slice(d.methods, func(i, j int) bool { return d.methods[i].ID < d.methods[j].ID })
	return d, nil
}

// apiError is an answer in Google's error shape.
type apiError struct {
	Code    int
	Reason  string
	Domain  string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Code, e.Reason, e.Message) }

// body is the JSON Google's APIs answer with on an error.
func (e *apiError) body() []byte {
	domain := e.Domain
	if domain == "" {
		domain = "global"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code":    e.Code,
		"message": e.Message,
		"errors":  []any{map[string]any{"message": e.Message, "domain": domain, "reason": e.Reason}},
	}})
	return b
}

func badRequest(reason, format string, a ...any) *apiError {
	return &apiError{Code: http.StatusBadRequest, Reason: reason, Message: fmt.Sprintf(format, a...)}
}

// route finds the method of a request by HTTP verb and path (the part after
// the service path), and the path parameters' values. The most literal
// match wins (instances/bulkInsert over instances/{instance}).
func (d *apiDoc) route(verb, path string) (*method, map[string]string, *apiError) {
	segs := strings.Split(path, "/")
	var best *method
	var bestVals map[string]string
	bestLit := -1
	pathKnown := false
	for _, m := range d.methods {
		if len(m.segs) != len(segs) {
			continue
		}
		vals := map[string]string{}
		lit, ok := 0, true
		for i, s := range m.segs {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				if segs[i] == "" {
					ok = false
					break
				}
				v, err := url.PathUnescape(segs[i])
				if err != nil {
					ok = false
					break
				}
				vals[strings.TrimPrefix(s[1:len(s)-1], "+")] = v
				continue
			}
			if s != segs[i] {
				ok = false
				break
			}
			lit++
		}
		if !ok {
			continue
		}
		pathKnown = true
		if m.HTTPMethod == verb && lit > bestLit {
			best, bestVals, bestLit = m, vals, lit
		}
	}
	if best == nil {
		if pathKnown {
			return nil, nil, &apiError{Code: http.StatusMethodNotAllowed, Reason: "httpMethodNotAllowed",
				Message: fmt.Sprintf("HTTP method %s is not supported by this URL", verb)}
		}
		return nil, nil, &apiError{Code: http.StatusNotFound, Reason: "notFound",
			Message: fmt.Sprintf("The requested URL /%s%s was not found on this server.", d.ServicePath, path)}
	}
	return best, bestVals, nil
}

func (d *apiDoc) regexp(pattern string) *regexp.Regexp {
	if re, ok := d.patterns.Load(pattern); ok {
		return re.(*regexp.Regexp)
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		re = regexp.MustCompile(".*") // a pattern RE2 cannot read is not held against the caller
	}
	d.patterns.Store(pattern, re)
	return re
}

// checkParams checks a request's path and query parameters against the
// method's (and the API's global) parameters: known, required ones present,
// single unless repeated, typed, enums, patterns, bounds.
func (d *apiDoc) checkParams(m *method, pathVals map[string]string, q url.Values) *apiError {
	for name, v := range pathVals {
		p := m.Parameters[name]
		if p == nil || p.Location != "path" {
			return badRequest("invalid", "Unknown path parameter %q of %s", name, m.ID)
		}
		if err := d.checkParam(name, p, v); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := m.Parameters[k]
		if p == nil {
			p = d.Parameters[k]
		}
		if p == nil || p.Location != "query" {
			return badRequest("badRequest", "Invalid JSON payload received. Unknown name %q: Cannot bind query parameter. Field '%s' could not be found in request message.", k, k)
		}
		if len(q[k]) > 1 && !p.Repeated {
			return badRequest("badRequest", "Invalid JSON payload received. Repeated values for field '%s' which is not repeated.", k)
		}
		for _, v := range q[k] {
			if err := d.checkParam(k, p, v); err != nil {
				return err
			}
		}
	}
	names := make([]string, 0, len(m.Parameters))
	for n := range m.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := m.Parameters[n]
		if !p.Required {
			continue
		}
		if _, ok := pathVals[n]; ok {
			continue
		}
		if _, ok := q[n]; !ok {
			return badRequest("required", "Required field '%s' not specified", n)
		}
	}
	return nil
}

func (d *apiDoc) checkParam(name string, p *param, v string) *apiError {
	bad := func(what string) *apiError {
		return badRequest("invalid", "Invalid value for field '%s': '%s'. %s", name, v, what)
	}
	switch p.Type {
	case "integer", "number":
		bits, signed := intFormat(p.Format)
		if p.Type == "number" {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return bad("Expected a number.")
			}
		} else if signed {
			if _, err := strconv.ParseInt(v, 10, bits); err != nil {
				return bad(fmt.Sprintf("Expected a %d-bit integer.", bits))
			}
		} else if _, err := strconv.ParseUint(v, 10, bits); err != nil {
			return bad(fmt.Sprintf("Expected an unsigned %d-bit integer.", bits))
		}
		f, _ := strconv.ParseFloat(v, 64)
		if lo, err := strconv.ParseFloat(p.Minimum, 64); err == nil && f < lo {
			return bad(fmt.Sprintf("Must be at least %s.", p.Minimum))
		}
		if hi, err := strconv.ParseFloat(p.Maximum, 64); err == nil && f > hi {
			return bad(fmt.Sprintf("Must be at most %s.", p.Maximum))
		}
	case "boolean":
		if v != "true" && v != "false" {
			return bad("Expected true or false.")
		}
	case "string":
		if !decimal64(p.Format, v) {
			return bad("Expected a decimal " + p.Format + ".")
		}
	}
	if len(p.Enum) > 0 && !contains(p.Enum, v) {
		return bad("Allowed: " + strings.Join(p.Enum, ", ") + ".")
	}
	if p.Pattern != "" && !d.regexp(p.Pattern).MatchString(v) {
		return bad("Must match pattern " + p.Pattern + ".")
	}
	return nil
}

// intFormat is the width and signedness of a discovery integer format.
func intFormat(f string) (bits int, signed bool) {
	switch f {
	case "uint32":
		return 32, false
	case "uint64":
		return 64, false
	case "int64":
		return 64, true
	}
	return 32, true
}

// decimal64 tells whether v is a decimal of a 64-bit string format (true
// for any other format).
func decimal64(format, v string) bool {
	var err error
	switch format {
	case "int64":
		_, err = strconv.ParseInt(v, 10, 64)
	case "uint64":
		_, err = strconv.ParseUint(v, 10, 64)
	}
	return err == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// decodeJSON reads one JSON value keeping numbers as written.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// checkRequestBody checks a request's body against the method's request
// schema (or that there is none when the method takes no body) and
// returns it decoded.
func (d *apiDoc) checkRequestBody(m *method, body []byte) (map[string]any, *apiError) {
	if m.Request == nil {
		if len(bytes.TrimSpace(body)) > 0 {
			return nil, badRequest("badRequest", "Invalid JSON payload received. %s takes no request body.", m.ID)
		}
		return nil, nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	v, err := decodeJSON(body)
	if err != nil {
		return nil, badRequest("parseError", "Invalid JSON payload received. %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("badRequest", "Invalid JSON payload received. Expected an object for %s.", m.Request.Ref)
	}
	if err := d.checkValue(d.Schemas[m.Request.Ref], obj, "resource", m.ID, true); err != nil {
		return nil, err
	}
	return obj, nil
}

// checkResponse checks a response body against the method's response
// schema; an error is a bug of the fake.
func (d *apiDoc) checkResponse(m *method, body []byte) error {
	if m.Response == nil {
		if len(bytes.TrimSpace(body)) > 0 && string(bytes.TrimSpace(body)) != "{}" {
			return fmt.Errorf("%s answers no body, the fake answered %s", m.ID, body)
		}
		return nil
	}
	v, err := decodeJSON(body)
	if err != nil {
		return fmt.Errorf("%s response: %v", m.ID, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("%s response is not an object", m.ID)
	}
	if e := d.checkValue(d.Schemas[m.Response.Ref], v, m.Response.Ref, m.ID, false); e != nil {
		return fmt.Errorf("%s response: %s", m.ID, e.Message)
	}
	return nil
}

// checkValue checks v (decoded with UseNumber) against s at path at. In a
// request (input), fields required for methodID by the schema's
// annotations must be present.
func (d *apiDoc) checkValue(s *schema, v any, at, methodID string, input bool) *apiError {
	if s == nil {
		return badRequest("invalid", "no schema for '%s'", at)
	}
	for s.Ref != "" {
		next := d.Schemas[s.Ref]
		if next == nil {
			return badRequest("invalid", "unknown schema %s at '%s'", s.Ref, at)
		}
		s = next
	}
	if v == nil { // JSON null reads as unset, as in proto3 JSON
		return nil
	}
	invalid := func(what string) *apiError {
		b, _ := json.Marshal(v)
		return badRequest("invalid", "Invalid value for field '%s': %s. %s", at, b, what)
	}
	switch s.Type {
	case "any":
		return nil
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return invalid("Expected an object.")
		}
		if s.AdditionalProperties != nil {
			keys := sortedKeys(obj)
			for _, k := range keys {
				if err := d.checkValue(s.AdditionalProperties, obj[k], at+"."+k, methodID, input); err != nil {
					return err
				}
			}
			return nil
		}
		for _, k := range sortedKeys(obj) {
			ps := s.Properties[k]
			if ps == nil {
				return badRequest("badRequest", "Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", k, at)
			}
			if err := d.checkValue(ps, obj[k], at+"."+k, methodID, input); err != nil {
				return err
			}
		}
		if input {
			for _, k := range sortedKeys(s.Properties) {
				if _, ok := obj[k]; !ok && contains(s.Properties[k].Annotations.Required, methodID) {
					return badRequest("required", "Required field '%s.%s' not specified", at, k)
				}
			}
		}
		return nil
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return invalid("Expected an array.")
		}
		for i, x := range arr {
			if err := d.checkValue(s.Items, x, fmt.Sprintf("%s[%d]", at, i), methodID, input); err != nil {
				return err
			}
		}
		return nil
	case "boolean":
		if _, ok := v.(bool); !ok {
			return invalid("Expected a boolean.")
		}
		return nil
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return invalid("Expected a JSON number (" + s.Format + ").")
		}
		bits, signed := intFormat(s.Format)
		var err error
		if signed {
			_, err = strconv.ParseInt(n.String(), 10, bits)
		} else {
			_, err = strconv.ParseUint(n.String(), 10, bits)
		}
		if err != nil {
			return invalid("Expected an integer (" + s.Format + ").")
		}
		return nil
	case "number":
		n, ok := v.(json.Number)
		if !ok {
			return invalid("Expected a JSON number.")
		}
		if f, err := n.Float64(); err != nil || math.IsInf(f, 0) {
			return invalid("Expected a number.")
		}
		return nil
	case "string":
		str, ok := v.(string)
		if !ok {
			if s.Format == "int64" || s.Format == "uint64" {
				return invalid("Expected a JSON string holding a decimal " + s.Format + " (64-bit integers are strings in JSON).")
			}
			return invalid("Expected a string.")
		}
		if !decimal64(s.Format, str) {
			return invalid("Expected a decimal " + s.Format + ".")
		}
		switch s.Format {
		case "byte":
			if _, err := base64.StdEncoding.DecodeString(str); err != nil {
				if _, err := base64.URLEncoding.DecodeString(str); err != nil {
					return invalid("Expected base64.")
				}
			}
		}
		if len(s.Enum) > 0 && !contains(s.Enum, str) {
			return invalid("Allowed: " + strings.Join(s.Enum, ", ") + ".")
		}
		if input && s.Pattern != "" && !d.regexp(s.Pattern).MatchString(str) {
			return invalid("Must match pattern " + s.Pattern + ".")
		}
		return nil
	}
	return badRequest("invalid", "schema type %q at '%s' is not known to the fake", s.Type, at)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
