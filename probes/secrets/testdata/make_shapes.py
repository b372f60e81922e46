#!/usr/bin/env python3
"""Writes shapes/ and shapes.json: issue 17's secret shapes, one sample a file.

Every secret here is fake: random values in realistic shapes (fixed seed), written for this
corpus. Samples are data: nothing ever executes them. Each shape has samples holding secrets
and clean look-alikes (the same idiom with a prompt, a reference, a placeholder or a hash).

shapes.json lists, per sample, its shape and the secrets a detector should find: the decoding
chain ("part") and 1-based line in that part, and substrings by which a finding of the
gitleaks CLI is matched to it. Clean samples list none.
"""
import base64, gzip, io, json, os, random, string

rnd = random.Random(20261206)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "shapes")

def rs(n, alphabet=string.ascii_letters + string.digits):
    return "".join(rnd.choice(alphabet) for _ in range(n))

def pw():
    return rs(4) + rnd.choice("!#%+-=?@^_") + rs(7) + rnd.choice("#%+-=@^_") + rs(2, string.digits)

def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()

def gz(s):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(s.encode())
    return buf.getvalue()

def line_of(text, needle):
    return text[:text.index(needle)].count("\n") + 1

samples = []

def add(name, shape, text, secrets=()):
    """secrets: (part, needle, [match...]); the needle's line is the expected line (in the
    document for plain parts, in part_text[part] otherwise)."""
    exp = []
    for part, needle, match, *inner in secrets:
        where = inner[0] if inner else text
        exp.append({"part": part, "line": line_of(where, needle), "match": match})
    samples.append((name, shape, text, exp))

# ------------------------------------------------------------------ cloud-config
p1 = pw()
inner = "DB_HOST=db.internal\nDB_PASSWORD=" + p1 + "\n"
add("cc-write-files-b64.yaml", "cloud-config write_files (b64)", f"""#cloud-config
write_files:
  - path: /etc/motd
    content: |
      Welcome
  - path: /etc/app/db.env
    permissions: '0600'
    encoding: b64
    content: {b64(inner)}
""", [("cloud-config:write_files[1]>base64", "DB_PASSWORD", [p1], inner)])

p2 = pw()
inner = "#!/bin/bash\nmysql -uroot -p'" + p2 + "' -e 'create database shop'\n"
add("cc-write-files-gzb64.yaml", "cloud-config write_files (gzip+base64, gz)", f"""#cloud-config
package_update: true
write_files:
  - path: /usr/local/bin/init-db.sh
    permissions: '0755'
    encoding: gzip+base64
    content: {b64(gz(inner))}
""", [("cloud-config:write_files[0]>base64>gzip", "mysql", [p2], inner)])

p3 = pw()
inner = "[client]\nuser=backup\npassword=" + p3 + "\n"
g = b64(gz(inner))
add("cc-write-files-gz-binary.yaml", "cloud-config write_files (gzip+base64, gz)", f"""#cloud-config
write_files:
  - path: /root/.my.cnf
    encoding: gz
    content: !!binary |
      {g}
""", [("cloud-config:write_files[0]>base64>gzip", "password=", [p3], inner)])

c1 = b64("DB_HOST=db.internal\nDB_PASSWORD_FILE=/run/secrets/db\nAPI_TOKEN=${API_TOKEN}\n")
c2 = b64(gz("#!/bin/sh\nexec /opt/app/bin/app --config /etc/app/app.env\n"))
add("cc-write-files-clean.yaml", "cloud-config write_files (b64)", f"""#cloud-config
write_files:
  - path: /etc/app/app.env
    encoding: base64
    content: {c1}
  - path: /etc/app/start.sh
    encoding: gz+b64
    content: {c2}
""")

p4 = pw()
text = f"""#cloud-config
runcmd:
  - [ systemctl, enable, --now, mariadb ]
  - [ mysql, -u, root, "-p{p4}", -e, "CREATE DATABASE shop" ]
  - echo ready
"""
add("cc-runcmd-list.yaml", "cloud-config runcmd/bootcmd lists", text,
    [("cloud-config:runcmd[1]", "mysql", [p4], "mysql -u root -p" + p4 + " -e 'CREATE DATABASE shop'\n")])

p5 = pw()
add("cc-bootcmd-list.yaml", "cloud-config runcmd/bootcmd lists", f"""#cloud-config
bootcmd:
  - - sshpass
    - -p
    - "{p5}"
    - scp
    - backup@10.0.2.15:/srv/seed.tgz
    - /opt
""", [("cloud-config:bootcmd[0]", "sshpass", [p5], "sshpass -p x\n")])

add("cc-runcmd-clean.yaml", "cloud-config runcmd/bootcmd lists", """#cloud-config
runcmd:
  - [ mysql, -u, root, -p, -e, "select 1" ]
  - [ sh, -c, 'mysql -uroot -p"$DB_ROOT_PASSWORD" shop < /opt/schema.sql' ]
  - [ sh, -c, 'aws ecr get-login-password | docker login -u AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com' ]
""")

p6, p7 = pw(), pw()
text = f"""#cloud-config
ssh_pwauth: true
chpasswd:
  expire: false
  users:
    - name: root
      password: {p6}
      type: text
    - name: ubuntu
      type: RANDOM
  list: [ "ops:{p7}" ]
"""
add("cc-chpasswd-forms.yaml", "cloud-config passwords", text,
    [("plain", "password: " + p6, [p6]), ("plain", "ops:", [p7])])

p8, p9 = pw(), pw()
h = "$6$rounds=5000$" + rs(16, string.ascii_letters + string.digits + "./") + "$" + rs(86, string.ascii_letters + string.digits + "./")
text = f"""#cloud-config
users:
  - default
  - name: deploy
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: false
    plain_text_passwd: "{p8}"
  - name: legacy
    lock_passwd: false
    passwd: {p9}
  - name: ops
    lock_passwd: false
    hashed_passwd: {h}
"""
add("cc-users-passwords.yaml", "cloud-config passwords", text,
    [("plain", p8, [p8]), ("plain", p9, [p9]), ("plain", h[:20], [h[:24]])])

add("cc-passwords-clean.yaml", "cloud-config passwords", """#cloud-config
chpasswd:
  expire: true
  users:
    - {name: root, type: RANDOM}
    - {name: ubuntu, password: RANDOM}
  list: [ "ops:R" ]
users:
  - default
  - name: app
    plain_text_passwd: ${APP_PASSWORD}
    lock_passwd: true
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb2bN5cE1lXq0f8yV7lJq4cV1m6Gd2k3a9tR8pW0sZx app@ci
""")

def fake_key(kind="RSA"):
    body = [rs(64, string.ascii_letters + string.digits + "+/") for _ in range(6)]
    return f"-----BEGIN {kind} PRIVATE KEY-----\\n" + "\\n".join(body) + f"\\n-----END {kind} PRIVATE KEY-----\\n", body[0]

k1, k1m = fake_key("OPENSSH")
text = f"""#cloud-config
ssh_deletekeys: true
ssh_keys:
  ed25519_private: "{k1}"
  ed25519_public: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8vQ0x2Lk3mN4pR6sT8uV0wX2yZ4aB6cD8eF0gH2iJ4 root@host
"""
add("cc-ssh-keys-quoted.yaml", "cloud-config private material", text, [("plain", "ed25519_private", [k1m])])

k2, k2m = fake_key("RSA")
text = f"""#cloud-config
ca_certs:
  remove_defaults: false
  trusted:
    - "{k2}"
"""
add("cc-ca-certs-private.yaml", "cloud-config private material", text, [("plain", "-----BEGIN RSA", [k2m])])

add("cc-private-material-clean.yaml", "cloud-config private material", """#cloud-config
ssh_authorized_keys:
  - ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDv3oV2lR8kQ1mX5zN7pW9tY2cB4dF6gH8jK0lM2nP4qR6sT8uV0wX2yZ4aB6cD8eF0gH2iJ4kL6mN8oP0qR2sT4uV6wX8yZ0aB2cD4eF6gH8iJ0kL2mN4pR6sT8uV0wX2 ops@laptop
ca_certs:
  trusted:
    - |
      -----BEGIN CERTIFICATE-----
      MIIBszCCAVmgAwIBAgIUQx3c7hKqk0bJm1rX5QdF2Zt7nYwwCgYIKoZIzj0EAwIw
      -----END CERTIFICATE-----
""")

p10 = pw()
inner = "DB_PASSWORD=" + p10 + "\n"
cc = f"""write_files:
  - path: /etc/app/db.env
    encoding: b64
    content: {b64(inner)}
"""
add("cc-mime-no-header.txt", "cloud-config in MIME (text/cloud-config)", f"""Content-Type: multipart/mixed; boundary="===b1==="
MIME-Version: 1.0

--===b1===
Content-Type: text/cloud-config; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit

{cc}--===b1===
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
echo booted
--===b1===--
""", [("mime:1>cloud-config:write_files[0]>base64", "DB_PASSWORD", [p10], inner)])

p11 = pw()
inner = "REDIS_PASSWORD=" + p11 + "\n"
add("cc-jinja-template.yaml", "cloud-config in MIME (text/cloud-config)", f"""## template: jinja
#cloud-config
hostname: {{{{ v1.local_hostname }}}}
write_files:
  - path: /etc/redis/auth.env
    encoding: b64
    content: {b64(inner)}
""", [("cloud-config:write_files[0]>base64", "REDIS", [p11], inner)])

p12 = pw()
text = f"""#cloud-config
runcmd:
  - echo 'root:{p12}' | chpasswd
write_files:
  - path: /etc/broken
    content: [ unclosed
"""
add("cc-broken-yaml.yaml", "cloud-config fallback to text", text, [("plain", "chpasswd", [p12])])

# ------------------------------------------------------------------ command lines
p13, p14 = pw(), pw()
text = f"""#!/bin/bash
set -euo pipefail
dnf install -y mariadb105-server
systemctl enable --now mariadb
mariadb -u root -p{p13} -e "CREATE DATABASE wiki"
mysqladmin -u root password '{p14}'
"""
add("cl-mariadb-mysqladmin.sh", "mysql/mariadb -p, mysqladmin password", text,
    [("plain", "mariadb -u", [p13]), ("plain", "mysqladmin", [p14])])

add("cl-mysql-clean.sh", "mysql/mariadb -p, mysqladmin password", """#!/bin/bash
DB_ROOT_PASSWORD=$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)
mysql -u root -p -e 'select 1'
mariadb -uroot -p"$DB_ROOT_PASSWORD" shop < /opt/schema.sql
mysqladmin -u root password "${DB_ROOT_PASSWORD}"
""")

p15, p16 = pw(), pw()
text = f"""#!/bin/bash
docker login -u ci --password {p15} registry.example.com
wget --http-user=ci --http-password={p16} -O /opt/app.tgz https://artifacts.example.com/app.tgz
"""
add("cl-docker-wget.sh", "docker login, wget --password", text,
    [("plain", "docker login", [p15]), ("plain", "wget", [p16])])

add("cl-docker-wget-clean.sh", "docker login, wget --password", """#!/bin/bash
aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com
wget --ask-password --user ci https://artifacts.example.com/app.tgz
wget --password="$ARTIFACT_PASSWORD" https://artifacts.example.com/app.tgz
""")

p17 = pw()
text = f"""#!/bin/bash
curl -fsSL \\
  -X PUT \\
  --user deploy:{p17} \\
  --upload-file /opt/build/app.jar \\
  https://nexus.example.com/repository/releases/app.jar
"""
add("cl-curl-user-multiline.sh", "curl -u / auth header (value's line)", text, [("plain", "--user", [p17])])

tok = rs(40)
text = f"""#!/bin/bash
curl -s \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer {tok}" \\
  -d '{{"event":"boot"}}' \\
  https://hooks.example.com/v1/events
"""
add("cl-curl-header-multiline.sh", "curl -u / auth header (value's line)", text, [("plain", "Authorization", [tok])])

add("cl-curl-clean.sh", "curl -u / auth header (value's line)", """#!/bin/bash
TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
curl -s -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id
curl -u "$NEXUS_USER:$NEXUS_PASSWORD" https://nexus.example.com/service/rest/v1/status
""")

p18, p19 = pw(), pw()
text = f"""<powershell>
net user Administrator {p18}
net user svc-backup "{p19}" /add /expires:never
net localgroup Administrators svc-backup /add
</powershell>
"""
add("cl-net-user.txt", "net user", text,
    [("powershell", "net user Administrator", [p18]), ("powershell", "svc-backup \"", [p19])])

add("cl-net-user-clean.txt", "net user", """<powershell>
net user Guest /active:no
net user svc-backup * /add
net user $env:USERNAME /delete
net user Administrator $AdminPassword
</powershell>
""")

p20, p21 = pw(), pw()
text = f"""#!/bin/bash
sshpass -p '{p20}' rsync -a /srv/www/ deploy@10.0.3.7:/srv/www/
htpasswd -b -c /etc/nginx/.htpasswd admin {p21}
"""
add("cl-sshpass-htpasswd.sh", "sshpass -p, htpasswd -b", text,
    [("plain", "sshpass", [p20]), ("plain", "htpasswd", [p21])])

add("cl-sshpass-htpasswd-clean.sh", "sshpass -p, htpasswd -b", """#!/bin/bash
sshpass -f /root/.deploy-pass rsync -a /srv/www/ deploy@10.0.3.7:/srv/www/
SSHPASS=$(cat /run/secrets/deploy) sshpass -e ssh deploy@10.0.3.7 uptime
htpasswd -c /etc/nginx/.htpasswd admin
htpasswd -b /etc/nginx/.htpasswd admin "$ADMIN_PASSWORD"
""")

p22, p23, p24 = pw(), pw(), pw()
text = f"""#!/bin/bash
mysql -uroot -e "CREATE USER 'shop'@'%' IDENTIFIED BY '{p22}';"
mysql -uroot -e "GRANT ALL ON shop.* TO 'shop'@'%';"
sudo -u postgres psql -c "ALTER USER postgres WITH PASSWORD '{p23}';"
sudo -u postgres psql -c "CREATE ROLE app LOGIN ENCRYPTED PASSWORD '{p24}';"
"""
add("cl-sql.sh", "SQL passwords", text,
    [("plain", "IDENTIFIED", [p22]), ("plain", "ALTER USER", [p23]), ("plain", "CREATE ROLE", [p24])])

p25 = pw()
text = f"""-- run once by the bootstrap
CREATE DATABASE wiki;
SET PASSWORD FOR 'root'@'localhost' = PASSWORD('{p25}');
FLUSH PRIVILEGES;
"""
add("cl-sql-set-password.sql", "SQL passwords", text, [("plain", "SET PASSWORD", [p25])])

add("cl-sql-clean.sh", "SQL passwords", """#!/bin/bash
mysql -uroot -e "CREATE USER 'shop'@'%' IDENTIFIED BY '${SHOP_DB_PASSWORD}';"
mysql -uroot -e "CREATE USER 'ro'@'%' IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';"
sudo -u postgres psql -c "CREATE ROLE app LOGIN ENCRYPTED PASSWORD 'md5a3556571e93b0d20722ba62be61e8c2d';"
sudo -u postgres psql -c "ALTER ROLE app PASSWORD '{{ app_db_password }}';"
sudo -u postgres psql -c "CREATE USER report WITH PASSWORD 'changeme';"
""")

p26 = pw()
text = f"""#!/bin/bash
redis-cli -u redis://:{p26}@cache.internal:6379 CONFIG SET maxmemory 256mb
"""
add("cl-redis-url.sh", "connection URL with an empty user", text, [("plain", "redis-cli", [p26])])

add("cl-redis-url-clean.sh", "connection URL with an empty user", """#!/bin/bash
redis-cli -u "redis://:${REDIS_PASSWORD}@cache.internal:6379" ping
redis-cli -u redis://cache.internal:6379 ping
""")

p27 = pw()
ghp = "ghp_" + rs(36)
sk = rs(38, string.ascii_letters + string.digits + "/+") + "a1"
akid = "AKIA" + rs(16, string.ascii_uppercase + "234567")
text = f"""<powershell>
$env:DB_PASSWORD = "{p27}"
[Environment]::SetEnvironmentVariable("GH_TOKEN", "{ghp}", "Machine")
[Environment]::SetEnvironmentVariable("AWS_ACCESS_KEY_ID", "{akid}", "Machine")
[Environment]::SetEnvironmentVariable("AWS_SECRET_ACCESS_KEY", "{sk}", "Machine")
</powershell>
"""
add("cl-powershell-env.txt", "PowerShell environment", text,
    [("powershell", "DB_PASSWORD", [p27]), ("powershell", "GH_TOKEN", [ghp]), ("powershell", "AWS_ACCESS_KEY_ID", [akid, sk])])

add("cl-powershell-env-clean.txt", "PowerShell environment", """<powershell>
$env:AWS_REGION = "eu-west-1"
$env:DB_PASSWORD = (Get-SSMParameterValue -Name /app/db -WithDecryption $true).Parameters[0].Value
[Environment]::SetEnvironmentVariable("DB_PASSWORD_FILE", "C:\\secrets\\db.txt", "Machine")
[Environment]::SetEnvironmentVariable("Path", $env:Path + ";C:\\tools", "Machine")
</powershell>
""")

# ------------------------------------------------------------------ host files
p28, p29 = pw(), pw()
text = f"""ls -la
sudo systemctl restart nginx
mysql -uadmin -p{p28} -h db.internal shop
docker login -u ci -p {p29} registry.example.com
history -c
"""
add("hf-bash-history.txt", "shell history, units, crontabs", text,
    [("plain", "mysql", [p28]), ("plain", "docker login", [p29])])

p30 = pw()
text = f"""[Unit]
Description=Nightly dump
[Service]
Type=oneshot
ExecStart=/usr/bin/mysqldump -u backup -p{p30} --all-databases --result-file=/backup/all.sql
"""
add("hf-systemd-unit.service", "shell history, units, crontabs", text, [("plain", "mysqldump", [p30])])

p31 = pw()
text = f"""# m h dom mon dow command
15 3 * * * sshpass -p {p31} rsync -a /backup/ archive@10.0.4.2:/archive/
"""
add("hf-crontab.txt", "shell history, units, crontabs", text, [("plain", "sshpass", [p31])])

add("hf-crontab-clean.txt", "shell history, units, crontabs", """# m h dom mon dow command
15 3 * * * /usr/local/bin/backup.sh --password-file /etc/backup/pass
30 4 * * 0 mysqldump -u backup -p"$(cat /etc/backup/pass)" shop > /backup/shop.sql
""")

akid2 = "AKIA" + rs(16, string.ascii_uppercase + "234567")
sk2 = rs(38, string.ascii_letters + string.digits + "/+") + "b2"
add("hf-aws-config-keyless.ini", "~/.aws/config profiles", """[default]
region = eu-west-1
[profile ec2]
role_arn = arn:aws:iam::123456789012:role/app
credential_source = Ec2InstanceMetadata
[profile chained]
role_arn = arn:aws:iam::123456789012:role/admin
source_profile = ec2
[profile helper]
credential_process = aws-vault exec prod --json
[profile eks]
role_arn = arn:aws:iam::123456789012:role/eks-pod
web_identity_token_file = /var/run/secrets/eks.amazonaws.com/serviceaccount/token
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
[profile sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = ReadOnly
""")
text = f"""[default]
region = eu-west-1
[profile ec2]
role_arn = arn:aws:iam::123456789012:role/app
credential_source = Ec2InstanceMetadata
[profile legacy]
aws_access_key_id = {akid2}
aws_secret_access_key = {sk2}
"""
add("hf-aws-config-key.ini", "~/.aws/config profiles", text, [("plain", akid2, [akid2, sk2])])

# ------------------------------------------------------------------ write
os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))
manifest = {}
for name, shape, text, exp in samples:
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)
    manifest[name] = {"shape": shape, "secrets": exp}
with open(os.path.join(HERE, "shapes.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")
print(len(samples), "samples,", sum(1 for s in samples if not s[3]), "clean,", sum(len(s[3]) for s in samples), "secrets")
