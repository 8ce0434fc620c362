package fakeaws

// InstanceCredentials are the role credentials IMDS hands an EC2 instance, with the
// properties AWS binds to their session. They travel with the credentials: a request
// signed with them carries these keys wherever it is sent from (IAM User Guide, global
// condition keys: ec2:SourceInstanceArn "is included in the request context whenever the
// role session is created by an Amazon EC2 instance"; aws:Ec2InstanceSourceVpc and
// aws:Ec2InstanceSourcePrivateIPv4 are "available only for use with credentials issued to
// an EC2 instance", AWS Security Blog, "How to use policies to restrict where EC2
// instance credentials can be used from").
type InstanceCredentials struct {
	InstanceARN string // the instance the session was created for
	VPC         string // the VPC the credentials were delivered to
	PrivateIP   string // the instance's primary private IPv4 address
}

// Path is the network a request comes over: through an interface VPC endpoint
// (Endpoint, its id, in VPC) or, with Endpoint empty, to the service's public endpoint;
// SourceIP is the caller's address as the service sees it.
type Path struct {
	Endpoint, VPC, SourceIP string
}

// Keys are the condition keys of a request signed with c and sent over p. The network
// keys follow the global condition keys page: aws:SourceVpc, aws:SourceVpce and
// aws:VpcSourceIp are "included in the request context only if the requester uses a VPC
// endpoint to make the request", and then aws:SourceIp is not (a private address is not
// what it compares); over the public endpoint only aws:SourceIp is.
func (c InstanceCredentials) Keys(p Path) map[string][]string {
	keys := map[string][]string{
		"ec2:SourceInstanceARN":            {c.InstanceARN},
		"aws:Ec2InstanceSourceVpc":         {c.VPC},
		"aws:Ec2InstanceSourcePrivateIPv4": {c.PrivateIP},
	}
	if p.Endpoint == "" {
		keys["aws:SourceIp"] = []string{p.SourceIP}
		return keys
	}
	keys["aws:SourceVpce"] = []string{p.Endpoint}
	keys["aws:SourceVpc"] = []string{p.VPC}
	keys["aws:VpcSourceIp"] = []string{p.SourceIP}
	return keys
}
