package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzServiceScalingFromLabels reads arbitrary labels as a service's: it
// never panics; labels that ask for nothing give no policy; a refusal
// names the label (or says "labels:" when no one label is to blame); a
// policy taken validates, and reads back the same after the store's JSON
// round trip.
func FuzzServiceScalingFromLabels(f *testing.F) {
	f.Add("com.df.scaleMin", "2", "com.df.scaleMax", "5", "com.df.scaleUpBy", "2", "autarky.alert.Hot", "3")
	f.Add("autarky.replicas.max", "10", "autarky.metric.query", "avg(load)", "autarky.metric.address", "http://p:9090", "autarky.metric.target", "0.5")
	f.Add("autarky.replicas.min", "-1", "autarky.metric.lat.upper", "NaN", "autarky.scale.cooldown_up", "1e9h", "autarky.alert.", "0")
	f.Add("autarky.scale.controller", "docker-scaler", "autarky.replicas.maximum", "x", "autarky.metric.a.b.query", "sum(", "com.df.scaleDownBy", "101")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3, k4, v4 string) {
		labels := map[string]string{k1: v1, k2: v2, k3: v3, k4: v4}
		s, ok, err := ServiceScalingFromLabels("web", labels)
		if ok != HasScalingLabels(labels) {
			t.Fatalf("ok %v, but HasScalingLabels %v", ok, HasScalingLabels(labels))
		}
		if !ok {
			if err != nil {
				t.Fatalf("no policy, and an error: %v", err)
			}
			return
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "label ") && !strings.HasPrefix(err.Error(), "labels: ") {
				t.Fatalf("a refusal that names no label: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("a policy taken from labels does not validate: %v", err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back ServiceScaling
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("the JSON round trip changed the policy:\n%+v\n%+v", s, back)
		}
	})
}
