package platform

// Rights are the least privilege a cluster's identities need on a cloud
// (safety rule 12), as the provider's data sources hand them to the
// configuration that grants them: the managers' (whose agents act on the
// cluster) and the workers' (who only read their join token).
type Rights struct {
	// Managers and Workers are the documents as JSON, in the cloud's own
	// form: an IAM policy document on aws, a list of custom roles with
	// their bindings on gcp.
	Managers, Workers string
	// ManagerPermissions and WorkerPermissions list every permission the
	// documents grant, sorted, where the cloud grants permissions by name
	// (gcp); nil elsewhere.
	ManagerPermissions, WorkerPermissions []string
}

// RightsInput names a cluster and where it lives. Each cloud reads the
// fields it knows; an empty field is the cloud's default (any region, the
// standard partition).
type RightsInput struct {
	Cluster string
	// aws: the partition ("aws", "aws-cn"), region, account and the KMS
	// key of the join tokens.
	Partition, Region, AccountID, KMSKeyARN string
	// gcp: the project of the groups and roles, and the store's bucket.
	Project, Bucket string
}

// RightsRenderer renders a cloud's Rights, refusing input it cannot
// render for with an error naming the field.
type RightsRenderer func(RightsInput) (Rights, error)

// RegisterRights makes cloud name's rights known to RenderRights, from its
// package's init.
func RegisterRights(name string, r RightsRenderer) { rights.add(name, r) }

// RenderRights renders the rights of in.Cluster's identities on cloud name.
func RenderRights(name string, in RightsInput) (Rights, error) {
	r, err := rights.get(name)
	if err != nil {
		return Rights{}, err
	}
	return r(in)
}
