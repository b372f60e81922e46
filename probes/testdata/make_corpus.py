#!/usr/bin/env python3
"""Writes the user-data corpus under userdata/ and its manifest.

Every secret here is fake: random values in realistic shapes, made with a fixed seed so the
corpus is reproducible. Samples are data: nothing ever executes them.

manifest.json lists, per sample, the secrets a detector should find: the decoding chain and
1-based line (in the decoded part) where it is, and substrings by which a finding of the
gitleaks CLI is matched to it. Clean samples list none.
"""
import base64, gzip, io, json, os, random, string

rnd = random.Random(20261128)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "userdata")

def rs(n, alphabet=string.ascii_letters + string.digits):
    return "".join(rnd.choice(alphabet) for _ in range(n))

B32 = string.ascii_uppercase + "234567"
def akia(prefix="AKIA"): return prefix + rs(16, B32)
def aws_secret(): return rs(38, string.ascii_letters + string.digits + "/+") + rs(1, string.ascii_lowercase) + rs(1, string.digits)
def password(): return rs(5) + rnd.choice("!#%&*+-=?@^_") + rs(6) + rnd.choice("!#%&*+-=?@^_") + rs(2, string.digits)
def session_token(): return "IQoJb3JpZ2luX2VjE" + rs(300, string.ascii_letters + string.digits + "/+") + "=="

def wrap76(b): return "\n".join(b[i:i+76] for i in range(0, len(b), 76)) + "\n"
def b64(data): return wrap76(base64.b64encode(data).decode())
def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f: f.write(data)
    return buf.getvalue()

def mime(parts, boundary=None, outer=True):
    """parts: list of (content_type, body_bytes_or_str, cte) ; cte in (None,'base64','quoted-printable')."""
    boundary = boundary or "===============" + rs(19, string.digits) + "=="
    out = []
    if outer:
        out.append('Content-Type: multipart/mixed; boundary="%s"\nMIME-Version: 1.0\n\n' % boundary)
    for ctype, body, cte in parts:
        out.append("--%s\n" % boundary)
        out.append("Content-Type: %s\nMIME-Version: 1.0\n" % ctype)
        if isinstance(body, bytes): body = body.decode()
        if cte == "base64":
            out.append("Content-Transfer-Encoding: base64\n")
            body = b64(body.encode())
        elif cte == "quoted-printable":
            out.append("Content-Transfer-Encoding: quoted-printable\n")
            body = qp(body)
        else:
            out.append('Content-Transfer-Encoding: 7bit\n')
        out.append('Content-Disposition: attachment; filename="part-%d"\n\n' % len(out))
        out.append(body if body.endswith("\n") else body + "\n")
    out.append("--%s--\n" % boundary)
    return "".join(out)

def qp(s):
    import quopri
    return quopri.encodestring(s.encode()).decode()

samples = []  # (name, bytes, [ (chain, text) ], [ (chain, needle_in_text, [match substrings]) ])

def line_of(text, needle):
    i = text.index(needle)
    return text[:i].count("\n") + 1

def add(name, data, parts, secrets):
    if isinstance(data, str): data = data.encode()
    texts = dict(parts)
    exp = []
    for chain, needle, matches in secrets:
        exp.append({"part": chain, "line": line_of(texts[chain], needle), "match": matches})
    samples.append((name, data, exp))

# ---------------------------------------------------------------- samples with secrets
kid, sk = akia(), aws_secret()
t = f"""#!/bin/bash
set -euo pipefail
yum install -y awscli jq
export AWS_ACCESS_KEY_ID={kid}
export AWS_SECRET_ACCESS_KEY={sk}
export AWS_DEFAULT_REGION=eu-west-1
aws s3 cp s3://deploy-artifacts-prod/app.tar.gz /opt/app.tar.gz
"""
add("s01-bash-aws-export.sh", t, [("plain", t)], [("plain", kid, [kid, sk])])

kid, sk = akia(), aws_secret()
t = f"""#!/bin/bash
aws configure set aws_access_key_id {kid} --profile deploy
aws configure set aws_secret_access_key {sk} --profile deploy
aws configure set region us-east-2 --profile deploy
aws --profile deploy ecr get-login-password | docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-2.amazonaws.com
"""
add("s02-aws-configure-set.sh", t, [("plain", t)], [("plain", kid, [kid, sk])])

pw = password()
t = f"""#cloud-config
password: {pw}
chpasswd: {{ expire: False }}
ssh_pwauth: True
package_update: true
packages:
  - nginx
"""
add("s03-cloud-config-password.yaml", t, [("plain", t)], [("plain", pw, [pw])])

pw1, pw2 = password(), password()
t = f"""#cloud-config
chpasswd:
  list: |
    root:{pw1}
    ubuntu:RANDOM
    admin:{pw2}
  expire: False
ssh_pwauth: true
"""
add("s04-cloud-config-chpasswd-list.yaml", t, [("plain", t)], [("plain", pw1, [pw1]), ("plain", pw2, [pw2])])

pw = password()
t = f"""#cloud-config
users:
  - default
  - name: deploy
    groups: [wheel]
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: false
    plain_text_passwd: '{pw}'
    shell: /bin/bash
"""
add("s05-cloud-config-users-plain.yaml", t, [("plain", t)], [("plain", pw, [pw])])

pw = password().replace("!", "x")
t = f"""#!/bin/bash
dnf install -y mariadb105-server
systemctl enable --now mariadb
mysql -uroot -p{pw} -e "CREATE DATABASE shop; GRANT ALL ON shop.* TO 'shop'@'localhost';"
"""
add("s06-mysql-p.sh", t, [("plain", t)], [("plain", pw, [pw])])

tok = "dckr_pat_" + rs(27, string.ascii_letters + string.digits + "_-")
t = f"""#!/bin/bash
yum install -y docker && systemctl start docker
docker login -u ci-bot -p {tok} registry.example.org
docker run -d -p 80:8080 registry.example.org/shop/web:1.4.2
"""
add("s07-docker-login.sh", t, [("plain", t)], [("plain", tok, [tok])])

pw = password()
t = f"""#!/bin/bash
curl -fsS -u admin:{pw} https://nexus.internal.corp/repository/raw/agent.tar.gz -o /tmp/agent.tar.gz
tar -C /opt -xzf /tmp/agent.tar.gz
"""
add("s08-curl-u.sh", t, [("plain", t)], [("plain", pw, [pw])])

ghp = "ghp_" + rs(36)
dbpw = password().replace("@", "x").replace("#", "y")
t = f"""#!/bin/bash
git clone https://deploy:{ghp}@github.com/acme/infra-config.git /opt/config
cat >> /etc/environment <<EOF
DATABASE_URL=postgres://app:{dbpw}@db.internal:5432/app
EOF
"""
add("s09-url-creds.sh", t, [("plain", t)], [("plain", ghp, [ghp]), ("plain", dbpw, [dbpw])])

ghp = "ghp_" + rs(36)
t = f"""#!/bin/bash
export GITHUB_TOKEN={ghp}
curl -sH "Authorization: token $GITHUB_TOKEN" https://api.github.com/repos/acme/app/releases/latest | jq -r .tarball_url
"""
add("s10-github-token.sh", t, [("plain", t)], [("plain", ghp, [ghp])])

hook = "https://hooks.slack.com/services/T" + rs(8, string.ascii_uppercase + string.digits) + "/B" + rs(10, string.ascii_uppercase + string.digits) + "/" + rs(24)
stripe = "sk_live_" + rs(32)
t = f"""#!/bin/bash
cat > /etc/shop.env <<'EOF'
SLACK_WEBHOOK={hook}
STRIPE_KEY={stripe}
EOF
systemctl restart shop
"""
add("s11-slack-stripe.sh", t, [("plain", t)], [("plain", hook, [hook[-24:]]), ("plain", stripe, [stripe])])

body = "\n".join("      " + rs(64, string.ascii_letters + string.digits + "+/") for _ in range(12))
t = f"""#cloud-config
write_files:
  - path: /home/ec2-user/.ssh/id_rsa
    owner: ec2-user:ec2-user
    permissions: '0600'
    content: |
      -----BEGIN RSA PRIVATE KEY-----
{body}
      -----END RSA PRIVATE KEY-----
"""
add("s12-private-key-write-files.yaml", t, [("plain", t)], [("plain", "-----BEGIN RSA", [body.split()[0]])])

kid, sk = akia(), aws_secret()
inner = f"""#!/bin/bash
mkdir -p /root/.aws
cat > /root/.aws/credentials <<EOF
[default]
aws_access_key_id = {kid}
aws_secret_access_key = {sk}
EOF
"""
add("s13-base64-whole.txt", b64(inner.encode()), [("base64", inner)], [("base64", kid, [kid, sk])])

pw = password()
inner = f"""#cloud-config
password: {pw}
chpasswd: {{ expire: false }}
runcmd:
  - [ systemctl, restart, sshd ]
"""
add("s14-gzip.bin", gz(inner.encode()), [("gzip", inner)], [("gzip", pw, [pw])])

pw = password()
inner = f"""#!/bin/bash
export DB_PASSWORD='{pw}'
/opt/app/bin/migrate --db postgres://app@db.internal/app
"""
add("s15-base64-gzip.txt", b64(gz(inner.encode())), [("base64>gzip", inner)], [("base64>gzip", pw, [pw])])

pw = password()
p1 = """#cloud-config
package_update: true
packages: [git, jq]
"""
p2 = f"""#!/bin/bash
echo 'APP_SECRET={pw}' >> /etc/app/app.env
systemctl enable --now app
"""
add("s16-mime-two-parts.txt", mime([("text/cloud-config; charset=\"us-ascii\"", p1, None), ("text/x-shellscript; charset=\"us-ascii\"", p2, None)]),
    [("mime:1", p1), ("mime:2", p2)], [("mime:2", pw, [pw])])

kid, sk = akia(), aws_secret()
p1 = "#cloud-config\nruncmd:\n  - echo hello\n"
p2 = f"""#!/bin/bash
# long comment line to push the keys across the 76-column wrapping of the base64 body ...
cat > /etc/backup.conf <<EOF
access_key = {kid}
secret_key = {sk}
bucket = backups-prod
EOF
"""
add("s17-mime-base64-part.txt", mime([("text/cloud-config", p1, None), ("text/x-shellscript", p2, "base64")]),
    [("mime:1", p1), ("mime:2", p2)], [("mime:2", kid, [kid, sk])])

pw = "Pa=" + password() + "=Zz"
p1 = f"""#!/bin/bash
# a quoted-printable part: '=' is written =3D and long lines get soft breaks ........................................
export REDIS_PASSWORD='{pw}'
systemctl restart worker
"""
add("s18-mime-qp.txt", mime([("text/x-shellscript; charset=\"utf-8\"", p1, "quoted-printable")]), [("mime:1", p1)], [("mime:1", pw, [pw[3:-3]])])

pw = password()
inner_b = "inner" + rs(10, string.digits)
n1 = "#!/bin/bash\necho nested\n"
n2 = f"#cloud-config\nusers:\n  - name: svc\n    lock_passwd: false\n    plain_text_passwd: {pw}\n"
nested = mime([("text/x-shellscript", n1, None), ("text/cloud-config", n2, None)], boundary=inner_b, outer=False)
p1 = "#cloud-config\ntimezone: UTC\n"
outer_b = "outer" + rs(10, string.digits)
data = f'Content-Type: multipart/mixed; boundary="{outer_b}"\nMIME-Version: 1.0\n\n--{outer_b}\nContent-Type: text/cloud-config\n\n{p1}\n--{outer_b}\nContent-Type: multipart/mixed; boundary="{inner_b}"\n\n{nested}--{outer_b}--\n'
add("s19-mime-nested.txt", data, [("mime:2>mime:2", n2)], [("mime:2>mime:2", pw, [pw])])

kid, sk = akia(), aws_secret()
p1 = "#cloud-config\nrepo_update: true\n"
p2 = f"#!/bin/bash\nexport AWS_ACCESS_KEY_ID={kid}\nexport AWS_SECRET_ACCESS_KEY={sk}\n/usr/local/bin/sync-config\n"
add("s20-gzip-mime.bin", gz(mime([("text/cloud-config", p1, None), ("text/x-shellscript", p2, None)]).encode()),
    [("gzip>mime:2", p2)], [("gzip>mime:2", kid, [kid, sk])])

pw = password().replace("'", "x")
t = f"""<powershell>
$pw = ConvertTo-SecureString '{pw}' -AsPlainText -Force
New-LocalUser -Name svc_backup -Password $pw -PasswordNeverExpires
Add-LocalGroupMember -Group Administrators -Member svc_backup
</powershell>
<persist>true</persist>
"""
add("s21-windows-powershell.txt", t, [("powershell", t)], [("powershell", pw, [pw])])

pw = password().replace("/", "x")
t = f"""<script>
net user opsadmin {pw} /add
net localgroup administrators opsadmin /add
</script>
"""
add("s22-windows-script-netuser.txt", t, [("script", t)], [("script", pw, [pw])])

kid, sk = akia(), aws_secret()
inner = f"""<powershell>
$env:AWS_ACCESS_KEY_ID = "{kid}"
$env:AWS_SECRET_ACCESS_KEY = "{sk}"
Read-S3Object -BucketName installers-prod -Key agent.msi -File C:\\agent.msi
</powershell>
"""
add("s23-windows-base64-powershell.txt", b64(inner.encode()), [("base64>powershell", inner)], [("base64>powershell", kid, [kid, sk])])

pw, sec = password(), rs(48)
t = f"""#!/bin/bash
cat > /etc/default/api <<EOF
DB_HOST=db.internal
DB_PASSWORD={pw}
API_SECRET={sec}
EOF
"""
add("s24-env-heredoc.sh", t, [("plain", t)], [("plain", pw, [pw]), ("plain", sec, [sec])])

pw, api = password().replace('"', "x"), rs(40, string.ascii_lowercase + string.digits)
t = f"""#!/bin/bash
cat > /opt/app/config.json <<'EOF'
{{
  "db": {{"host": "db.internal", "user": "app", "password": "{pw}"}},
  "apiKey": "{api}"
}}
EOF
"""
add("s25-json-config.sh", t, [("plain", t)], [("plain", pw, [pw]), ("plain", api, [api])])

kid, sk, st = akia("ASIA"), aws_secret(), session_token()
t = f"""#!/bin/bash
cat > /home/ec2-user/.aws/credentials <<EOF
[tmp]
aws_access_key_id = {kid}
aws_secret_access_key = {sk}
aws_session_token = {st}
EOF
"""
add("s26-session-key.sh", t, [("plain", t)], [("plain", kid, [kid, sk, st[:40]])])

kid, sk = akia(), aws_secret()
t = f"""#!/bin/bash
yum install -y s3fs-fuse
echo {kid}:{sk} > /etc/passwd-s3fs
chmod 600 /etc/passwd-s3fs
s3fs media-prod /mnt/media -o passwd_file=/etc/passwd-s3fs
"""
add("s27-s3fs.sh", t, [("plain", t)], [("plain", kid, [kid, sk])])

npm = "npm_" + rs(36)
t = f"""#!/bin/bash
echo "//registry.npmjs.org/:_authToken={npm}" > /root/.npmrc
npm ci --prefix /opt/web
"""
add("s28-npmrc.sh", t, [("plain", t)], [("plain", npm, [npm])])

pw = password()
t = f"""#!/bin/bash
export TF_VAR_db_password='{pw}'
cd /opt/infra && terraform apply -auto-approve
"""
add("s29-tf-var.sh", t, [("plain", t)], [("plain", pw, [pw])])

pw = password().replace("@", "x").replace("#", "y")
t = f"""#!/bin/bash
psql "postgresql://admin:{pw}@analytics.cluster-abc.eu-west-1.rds.amazonaws.com:5432/warehouse" -f /opt/schema.sql
"""
add("s30-psql-url.sh", t, [("plain", t)], [("plain", pw, [pw])])

pw = password()
p1 = "#cloud-config\nhostname: web-1\n"
p2 = f"#!/bin/bash\necho 'root:{pw}' | chpasswd\n"
gzpart = base64.b64encode(gz(p2.encode())).decode()
data = mime([("text/cloud-config", p1, None)])
# a gzip part, as cloud-init accepts it (application/x-gzip, base64)
b = data.split("\n")[0].split('boundary="')[1].rstrip('"')
data = data.replace(f"--{b}--\n", f"--{b}\nContent-Type: application/x-gzip\nContent-Transfer-Encoding: base64\n\n{wrap76(gzpart)}--{b}--\n")
add("s31-mime-gzip-part.txt", data, [("mime:2>gzip", p2)], [("mime:2>gzip", pw, [pw])])

pw = password()
t = f"""#!/bin/bash
mysqldump --user=backup --password={pw} --all-databases | gzip > /backup/all.sql.gz
"""
add("s32-password-flag.sh", t, [("plain", t)], [("plain", pw, [pw])])

# ---------------------------------------------------------------- clean samples
c = []
c.append(("c01-imds-token.sh", """#!/bin/bash
TOKEN=$(curl -sX PUT "http://169.254.169.254/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
INSTANCE_ID=$(curl -sH "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)
REGION=$(curl -sH "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/placement/region)
aws ec2 create-tags --region "$REGION" --resources "$INSTANCE_ID" --tags Key=Bootstrapped,Value=true
"""))
c.append(("c02-secretsmanager.sh", """#!/bin/bash
DB_PASSWORD=$(aws secretsmanager get-secret-value --secret-id prod/shop/db --query SecretString --output text | jq -r .password)
export DB_PASSWORD
API_TOKEN="$(aws secretsmanager get-secret-value --secret-id prod/shop/api --query SecretString --output text)"
/opt/shop/bin/start --db-password-env DB_PASSWORD
"""))
c.append(("c03-ssm-parameter.sh", """#!/bin/bash
export API_KEY=$(aws ssm get-parameter --name /shop/prod/api-key --with-decryption --query Parameter.Value --output text)
REDIS_PASSWORD=`aws ssm get-parameter --name /shop/prod/redis --with-decryption --query Parameter.Value --output text`
echo "REDIS_PASSWORD=${REDIS_PASSWORD}" >> /etc/shop.env
"""))
# Once a clean sample (c04): a crypt hash is not the password, but since issue 17 the
# cloud-config reader reports it as what it is (cloud-config-password-hash, severity MEDIUM):
# anyone who reads the user data can try to crack it offline.
c.append(("s33-cloud-config-password-hash.yaml", """#cloud-config
users:
  - name: ops
    groups: [wheel]
    lock_passwd: false
    passwd: $6$rounds=4096$J86aZz0Q$YiW7wJ0Bw4YtZQjGZ8n1Qm0p3bDq9vZl7hT2cF4kX1sR6uN8eA5yL0oP3iM9gH2jK7dW4qS1tU6vB8nC0xZ.
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8jx2mQ0vYk3Tn7Rb9WcL5pHs1Ue4Fz6Da8Kw2Jy0N ops@laptop
      - ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vQ9kL2mN4pR6sT8uV0wX2yZ4aB6cD8eF0gH2iJ4kL6mN8oP0qR2sT4uV6wX8yZ0aB2cD4eF6gH8iJ0kL2mN4pR6sT8uV0wX2yZ4aB6cD8eF0gH2iJ4kL6mN8o deploy@ci
ssh_pwauth: false
chpasswd:
  expire: false
package_upgrade: true
"""))
c.append(("c05-docs-example-keys.sh", """#!/bin/bash
# Keys from the AWS documentation, as tutorials show them
aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE
aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
aws configure set region us-west-2
"""))
c.append(("c06-placeholders.sh", """#!/bin/bash
cat > /etc/app/app.env <<'EOF'
DB_PASSWORD=<your-db-password>
API_TOKEN=${API_TOKEN}
SMTP_PASSWORD={{ smtp_password }}
ADMIN_PASSWORD=%ADMIN_PASSWORD%
EOF
sed -i "s/__PASSWORD__/${DB_PASSWORD}/" /etc/app/app.env
"""))
c.append(("c07-checksums-ids.sh", """#!/bin/bash
curl -fsSLo /tmp/node_exporter.tar.gz https://github.com/prometheus/node_exporter/releases/download/v1.8.2/node_exporter-1.8.2.linux-amd64.tar.gz
echo "6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66  /tmp/node_exporter.tar.gz" | sha256sum -c -
aws ec2 describe-images --image-ids ami-0abcdef1234567890 --region eu-central-1
echo "instance i-0123456789abcdef0 subnet subnet-0a1b2c3d4e5f67890 sg-0fedcba9876543210"
REQUEST_ID=5f0c8a64-1b7e-4d35-9c2a-7e8f9a0b1c2d
"""))
c.append(("c08-mime-clean.txt", mime([
    ("text/cloud-config", "#cloud-config\npackage_update: true\npackages: [nginx, amazon-cloudwatch-agent]\n", None),
    ("text/x-shellscript", "#!/bin/bash\nsystemctl enable --now nginx\n/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c ssm:AmazonCloudWatch-linux\n", "base64"),
])))
c.append(("c09-gzip-clean.bin", gz(b"#cloud-config\ntimezone: Europe/Berlin\nntp:\n  enabled: true\n  servers: [169.254.169.123]\nruncmd:\n  - [sh, -c, 'echo ok > /var/tmp/booted']\n")))
c.append(("c10-windows-clean.txt", """<powershell>
Install-WindowsFeature -Name Web-Server -IncludeManagementTools
$pw = (Get-SSMParameter -Name /shop/iis/app-pool -WithDecryption $true).Value
Set-ItemProperty IIS:\\AppPools\\Shop -Name processModel -Value @{userName="svc_shop";password=$pw;identitytype=3}
Set-TimeZone -Id "UTC"
</powershell>
"""))
c.append(("c11-ecs-config.sh", """#!/bin/bash
cat >> /etc/ecs/ecs.config <<EOF
ECS_CLUSTER=prod-shop
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_CONTAINER_METADATA=true
ECS_CONTAINER_INSTANCE_TAGS={"team": "shop", "env": "prod"}
EOF
"""))
ca = base64.b64encode(("-----BEGIN CERTIFICATE-----\n" + wrap76(base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(700))).decode()) + "-----END CERTIFICATE-----\n").encode()).decode()
c.append(("c12-eks-bootstrap.sh", f"""#!/bin/bash
set -o xtrace
/etc/eks/bootstrap.sh prod-cluster \\
  --b64-cluster-ca {ca} \\
  --apiserver-endpoint https://0A1B2C3D4E5F60718293A4B5C6D7E8F9.gr7.eu-west-1.eks.amazonaws.com \\
  --container-runtime containerd \\
  --kubelet-extra-args '--node-labels=nodegroup=general,eks.amazonaws.com/capacityType=ON_DEMAND'
"""))
c.append(("c13-base64-clean.txt", b64(b"#!/bin/bash\nyum update -y\nyum install -y httpd\nsystemctl enable --now httpd\necho '<h1>hello</h1>' > /var/www/html/index.html\n")))
c.append(("c14-region-public-repo.sh", """#!/bin/bash
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
git clone https://github.com/aws-samples/aws-cdk-examples.git /opt/examples
pip3 install --index-url https://pypi.org/simple boto3==1.35.0
echo "password authentication disabled" | logger -t bootstrap
"""))
for name, data in c:
    exp = []
    if name.startswith("s33-"):
        exp = [{"part": "plain", "line": line_of(data, "passwd: $6$"), "match": ["$6$rounds=4096$J86aZz0Q$"]}]
    samples.append((name, data.encode() if isinstance(data, str) else data, exp))

os.makedirs(OUT, exist_ok=True)
manifest = {}
for name, data, exp in samples:
    with open(os.path.join(OUT, name), "wb") as f: f.write(data)
    manifest[name] = exp
with open(os.path.join(OUT, "..", "userdata-manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")
print(len(samples), "samples,", sum(1 for s in samples if not s[2]), "clean,", sum(len(s[2]) for s in samples), "secrets")
