package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// MotoOption changes how StartMoto starts moto.
type MotoOption func(*motoOptions)

type motoOptions struct {
	iam *motoIAM
}

// IAMUser is an IAM user StartMoto creates in an IAM-enforcing moto,
// holding one inline policy.
type IAMUser struct {
	Name string
	// Policy is the user's policy document, as JSON. moto gets what it
	// can evaluate of it (MotoEvaluablePolicy); IAMResourceCheck checks
	// the rest.
	Policy string
	// AccessKeyID and SecretAccessKey are the user's access key, set by
	// StartMoto.
	AccessKeyID, SecretAccessKey string
}

// Credentials are the user's static credentials.
func (u *IAMUser) Credentials() awsv2.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(u.AccessKeyID, u.SecretAccessKey, "")
}

// AdminPolicy allows everything: the policy of a test's own setup user.
const AdminPolicy = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}`

// EnforceIAM starts moto with IAM enforced and creates users in it.
//
// moto enforces IAM once it has answered INITIAL_NO_AUTH_ACTION_COUNT
// calls: from then on a call must be signed with an access key of one of
// its IAM users, and the user's policies must allow the call. StartMoto
// sets the count to exactly the calls that create the users (CreateUser,
// PutUserPolicy, CreateAccessKey: three each), makes them, and checks that
// a call with an unknown key is then refused, so everything the test does
// afterwards, its own setup included, is checked: give the setup a user
// with AdminPolicy.
//
// What moto 5.2 checks, read from its source (moto/core/authorization.py,
// moto/iam/access_control.py), and what it does not:
//   - the SigV4 signature, against the user's secret key;
//   - Action (and NotAction) of every Allow and Deny statement of the
//     user's inline, attached and group policies, with * wildcards; an
//     explicit Deny wins;
//   - Resource only as the literal "*" for EC2, Auto Scaling and SSM
//     (moto passes "*" as the resource of their calls; only IAM, STS, SQS
//     and S3 calls name theirs): a statement whose Resource names ARNs
//     never matches "*", so it grants nothing there;
//   - no Condition: moto evaluates none for these calls (it passes no
//     context keys, so aws:ResourceTag, kms:ViaService and every other
//     condition hold vacuously).
//
// A resource-scoped policy as it is would grant nothing in moto, so moto
// gets the policy's actions on "*" (MotoEvaluablePolicy), and a test puts
// IAMResourceCheck in its AWSProxy for the resources and conditions.
func EnforceIAM(users ...*IAMUser) MotoOption {
	return func(o *motoOptions) { o.iam = &motoIAM{users: users} }
}

type motoIAM struct {
	users []*IAMUser
}

// unauthenticatedCalls is how many calls moto answers before enforcing.
func (m *motoIAM) unauthenticatedCalls() int { return 3 * len(m.users) }

func (m *motoIAM) createUsers(t testing.TB, endpoint string) {
	t.Helper()
	anyone := credentials.NewStaticCredentialsProvider("testing", "testing", "")
	for _, u := range m.users {
		if _, err := iamCall(endpoint, anyone, url.Values{"Action": {"CreateUser"}, "UserName": {u.Name}}); err != nil {
			t.Fatalf("moto: create IAM user %s: %v", u.Name, err)
		}
		doc, err := MotoEvaluablePolicy(u.Policy)
		if err != nil {
			t.Fatalf("moto: the policy of IAM user %s: %v", u.Name, err)
		}
		if _, err := iamCall(endpoint, anyone, url.Values{"Action": {"PutUserPolicy"}, "UserName": {u.Name},
			"PolicyName": {u.Name}, "PolicyDocument": {doc}}); err != nil {
			t.Fatalf("moto: put the policy of IAM user %s: %v", u.Name, err)
		}
		body, err := iamCall(endpoint, anyone, url.Values{"Action": {"CreateAccessKey"}, "UserName": {u.Name}})
		if err != nil {
			t.Fatalf("moto: create an access key of IAM user %s: %v", u.Name, err)
		}
		var out struct {
			Key struct {
				ID     string `xml:"AccessKeyId"`
				Secret string `xml:"SecretAccessKey"`
			} `xml:"CreateAccessKeyResult>AccessKey"`
		}
		if err := xml.Unmarshal(body, &out); err != nil || out.Key.ID == "" || out.Key.Secret == "" {
			t.Fatalf("moto: the access key of IAM user %s: %v\n%s", u.Name, err, body)
		}
		u.AccessKeyID, u.SecretAccessKey = out.Key.ID, out.Key.Secret
	}
	// The users used up the unauthenticated calls: moto must now refuse a
	// key it does not know.
	if body, err := iamCall(endpoint, anyone, url.Values{"Action": {"ListUsers"}}); err == nil {
		t.Fatalf("moto does not enforce IAM: a call with an unknown access key was answered:\n%s", body)
	} else if !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("moto: a call with an unknown access key: %v, want InvalidClientTokenId", err)
	}
}

// iamCall makes one IAM Query API call, signed with creds.
func iamCall(endpoint string, creds awsv2.CredentialsProvider, form url.Values) ([]byte, error) {
	form.Set("Version", "2010-05-08")
	payload := form.Encode()
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(payload))
	if err := v4.NewSigner().SignHTTP(ctx, c, req, hex.EncodeToString(sum[:]), "iam", MotoRegion, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s: HTTP %d: %s", form.Get("Action"), resp.StatusCode, body)
	}
	return body, nil
}

// iamDoc is an IAM policy document as IAM reads it: Action, NotAction and
// Resource may each be one string or a list.
type iamDoc struct {
	Version   string
	Statement []iamStatement
}

type iamStatement struct {
	Sid       string                       `json:",omitempty"`
	Effect    string                       `json:",omitempty"`
	Action    stringOrList                 `json:",omitempty"`
	NotAction stringOrList                 `json:",omitempty"`
	Resource  stringOrList                 `json:",omitempty"`
	Condition map[string]map[string]string `json:",omitempty"`
}

type stringOrList []string

func (l *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

// MotoEvaluablePolicy is what moto can evaluate of an IAM policy for EC2,
// Auto Scaling and SSM: every statement with its Effect and actions, on
// Resource "*", without conditions (see EnforceIAM). With it, moto checks
// that the policy names every action a client calls, and refuses every
// other action; which resources, and under which conditions, is
// IAMResourceCheck's part.
func MotoEvaluablePolicy(doc string) (string, error) {
	var d iamDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return "", err
	}
	for i := range d.Statement {
		d.Statement[i].Resource, d.Statement[i].Condition = stringOrList{"*"}, nil
	}
	b, err := json.Marshal(d)
	return string(b), err
}

// IAMDeniedMarker is in the message of every refusal of IAMResourceCheck,
// to tell it from moto's own.
const IAMDeniedMarker = "(refused by the test proxy's resource check, not by moto)"

// IAMResourceCheck is an AWSProxy fault function that checks, for calls
// signed by one of users, the half of IAM evaluation moto skips: the
// resources a call names and the conditions on them. It answers AWS's
// access denied error for the call's protocol when the user's Policy
// names the call's action but no Allow statement grants it on every
// resource the call touches with its conditions met, or a Deny statement
// matches; other calls go on to moto: those of an action the policy does
// not name at all (moto refuses them itself), and those of users not given
// (the setup's). It is a stand-in for
// IAM, written from IAM's documented rules, for what moto lacks:
//
//   - the resources: an SSM parameter call's parameters (Name, Names, or
//     Path for GetParametersByPath) as
//     arn:aws:ssm:<region>:<account>:parameter<name>; SetDesiredCapacity's
//     group and TerminateInstanceInAutoScalingGroup's instance's group as
//     the group's ARN (from moto); every other call (the describes) "*";
//   - matching: Resource and Action patterns with IAM's wildcards (* any
//     run of characters, ? one), actions case-insensitively;
//   - conditions: StringEquals on aws:ResourceTag/<key>, against the
//     group's tags in moto; any other condition key counts as not met, so
//     a statement that relies on one fails the test rather than passing
//     unchecked (kms:ViaService conditions never come up: no client here
//     calls KMS).
//
// endpoint is moto, read with admin's credentials.
func IAMResourceCheck(endpoint string, admin *IAMUser, users ...*IAMUser) func(AWSCall) *AWSFault {
	docs := map[string]iamDoc{}
	for _, u := range users {
		var d iamDoc
		if err := json.Unmarshal([]byte(u.Policy), &d); err != nil {
			panic(fmt.Sprintf("IAMResourceCheck: the policy of %s: %v", u.Name, err))
		}
		docs[u.AccessKeyID] = d
	}
	as := autoscaling.NewFromConfig(awsv2.Config{Region: MotoRegion, Credentials: admin.Credentials(), BaseEndpoint: awsv2.String(endpoint)})
	return func(c AWSCall) *AWSFault {
		d, checked := docs[c.AccessKey]
		if !checked {
			return nil
		}
		action := c.Service + ":" + c.Action
		if !d.names(action) {
			return nil // moto refuses an action no statement names
		}
		resources, tags, err := callResources(as, c)
		if err != nil {
			return AWSAPIError(c, "InternalFailure", "IAMResourceCheck: "+err.Error())
		}
		for _, r := range resources {
			if !d.allows(action, r, tags) {
				code := map[string]string{"ssm": "AccessDeniedException", "ec2": "UnauthorizedOperation"}[c.Service]
				if code == "" {
					code = "AccessDenied"
				}
				return AWSAPIError(c, code, fmt.Sprintf("User is not authorized to perform: %s on resource: %s %s", action, r, IAMDeniedMarker))
			}
		}
		return nil
	}
}

// callResources are the ARNs a call acts on and, for a group, its tags.
func callResources(as *autoscaling.Client, c AWSCall) ([]string, map[string]string, error) {
	const account = "123456789012" // moto's default account
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch c.Service {
	case "ssm":
		var in struct {
			Name, Path string
			Names      []string
		}
		if err := json.Unmarshal(c.Body, &in); err != nil {
			return nil, nil, err
		}
		var arns []string
		for _, n := range append(in.Names, in.Name, in.Path) {
			if n != "" {
				arns = append(arns, "arn:aws:ssm:"+MotoRegion+":"+account+":parameter"+n)
			}
		}
		if len(arns) == 0 {
			arns = []string{"*"}
		}
		return arns, nil, nil
	case "autoscaling":
		group := AWSFormValue(c.Body, "AutoScalingGroupName")
		if c.Action == "TerminateInstanceInAutoScalingGroup" {
			out, err := as.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{AWSFormValue(c.Body, "InstanceId")}})
			if err != nil {
				return nil, nil, err
			}
			if len(out.AutoScalingInstances) == 0 {
				return []string{"*"}, nil, nil // AWS answers "not found" before any check of a group
			}
			group = awsv2.ToString(out.AutoScalingInstances[0].AutoScalingGroupName)
		}
		if group == "" || strings.HasPrefix(c.Action, "Describe") {
			return []string{"*"}, nil, nil
		}
		out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
		if err != nil || len(out.AutoScalingGroups) == 0 {
			return nil, nil, fmt.Errorf("group %q: %v", group, err)
		}
		g := out.AutoScalingGroups[0]
		tags := map[string]string{}
		for _, tg := range g.Tags {
			tags[awsv2.ToString(tg.Key)] = awsv2.ToString(tg.Value)
		}
		return []string{awsv2.ToString(g.AutoScalingGroupARN)}, tags, nil
	}
	return []string{"*"}, nil, nil
}

// names reports whether an Allow statement names action, on any resource.
func (d iamDoc) names(action string) bool {
	for _, st := range d.Statement {
		if st.Effect == "Allow" && (st.Action != nil && anyMatch(st.Action, action, true) || st.NotAction != nil && !anyMatch(st.NotAction, action, true)) {
			return true
		}
	}
	return false
}

// allows is IAM's verdict on action on resource: an Allow statement
// matches and no Deny statement does.
func (d iamDoc) allows(action, resource string, tags map[string]string) bool {
	allowed := false
	for _, st := range d.Statement {
		matches := st.Action != nil && anyMatch(st.Action, action, true) || st.NotAction != nil && !anyMatch(st.NotAction, action, true)
		if !matches || !anyMatch(st.Resource, resource, false) || !conditionsMet(st.Condition, tags) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = allowed || st.Effect == "Allow"
	}
	return allowed
}

func conditionsMet(cond map[string]map[string]string, tags map[string]string) bool {
	for op, kv := range cond {
		for k, want := range kv {
			tag, isTag := strings.CutPrefix(k, "aws:ResourceTag/")
			got, has := tags[tag]
			if op != "StringEquals" || !isTag || !has || got != want {
				return false
			}
		}
	}
	return true
}

// anyMatch reports whether s matches one of IAM's wildcard patterns.
func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// wildcardMatch matches s against p, where * is any run of characters and
// ? any one character.
func wildcardMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if wildcardMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}
