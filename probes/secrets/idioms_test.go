package secrets

import "testing"

// idiomPW is the fake password the idiom tests plant.
const idiomPW = "Vt8qLz3RwX6mKp2N"

// TestCommandLineAndSQLIdioms: the credential idioms of command lines and SQL (issue 17),
// wherever they are written, each found once at the line holding the value, and each one's
// look-alike (a prompt, a reference, a hash, an option) not found.
func TestCommandLineAndSQLIdioms(t *testing.T) {
	d := detector(t)
	pw := idiomPW
	found := []struct{ rule, text string }{
		{"mysql-password-argument", "mariadb -u admin -p" + pw + " shop"},
		{"mysql-password-argument", "mariadb-dump -uroot -p'" + pw + "' shop > /tmp/d.sql"},
		{"mysql-password-argument", "mysqladmin -u root password '" + pw + "'"},
		{"password-argument", "mysql --user=root --password=" + pw + " shop"},
		{"password-argument", "docker login -u ci --password " + pw + " registry.example.com"},
		{"password-argument", "wget --http-user=bob --http-password=" + pw + " https://files.example.com/a.tgz"},
		{"password-argument", "wget --user bob --password '" + pw + "' ftp://files.example.com/a"},
		{"docker-login-password", "docker login -u ci -p " + pw + " registry.example.com"},
		{"curl-auth-user", "curl -fsS -u deploy:" + pw + " https://nexus.example.com/x"},
		{"curl-auth-user", "curl --user deploy:" + pw + " https://nexus.example.com/x"},
		{"windows-net-user-password", "net user Administrator " + pw},
		{"windows-net-user-password", `net user "svc backup" "` + pw + `" /add /expires:never`},
		{"sshpass-password", "sshpass -p " + pw + " ssh -o StrictHostKeyChecking=no admin@10.0.0.5"},
		{"sshpass-password", "sshpass -p'" + pw + "' rsync -a /srv admin@10.0.0.5:/backup"},
		{"htpasswd-password", "htpasswd -b -c /etc/nginx/.htpasswd admin " + pw},
		{"htpasswd-password", "htpasswd -nbB admin '" + pw + "' >> /etc/nginx/.htpasswd"},
		{"sql-password", `mysql -uroot -e "CREATE USER 'app'@'%' IDENTIFIED BY '` + pw + `';"`},
		{"sql-password", `mysql -e "ALTER USER 'root'@'localhost' IDENTIFIED WITH mysql_native_password BY \"` + pw + `\";"`},
		{"sql-password", `sudo -u postgres psql -c "ALTER USER postgres WITH PASSWORD '` + pw + `';"`},
		{"sql-password", "CREATE ROLE app LOGIN ENCRYPTED PASSWORD '" + pw + "';"},
		{"sql-password", "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('" + pw + "');"},
		{"url-credentials", "redis-cli -u redis://:" + pw + "@cache.internal:6379 ping"},
		{"url-credentials", "REDIS_URL=rediss://:" + pw + "@cache.internal:6380/0"},
		{"powershell-env-secret", `$env:DB_PASSWORD = "` + pw + `"`},
		{"powershell-env-secret", `[Environment]::SetEnvironmentVariable("DB_PASSWORD", "` + pw + `", "Machine")`},
		{"github-pat", `[Environment]::SetEnvironmentVariable("GH_CONFIG", "ghp_R7kq2Xw9Lm4Tz8Vb1Nc5Hd3Fg6Js0Pa2Ye7Ui", "User")`},
		{"aws-secret-access-key", `[System.Environment]::SetEnvironmentVariable('AWS_SECRET_ACCESS_KEY', 'q8Hf2kLm9Zx4Vb7Nc1Rt6Yw3Pj5Ds0Ga+Ke/Ui8O', 'Machine')`},
	}
	for _, c := range found {
		text := "#!/bin/bash\nset -e\n" + c.text + "\necho done\n"
		fs := d.Scan(text, "plain", []byte("k"))
		if len(fs) != 1 || fs[0].Rule != c.rule || fs[0].Line != 3 {
			t.Errorf("%s: got %+v, want one %s at line 3", c.text, fs, c.rule)
		}
	}
	clean := []string{
		"mysql -u root -p -e 'select 1'",                 // prompts
		`mysql -uroot -p"$DB_ROOT_PASSWORD" shop`,        // a variable
		"mariadb -u app -p${DB_PASS} shop",               // a variable
		"mysqladmin -u root password \"$(cat /run/pw)\"", // a command
		"docker login -u AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		`curl -u "$NEXUS_USER:$NEXUS_PASSWORD" https://nexus.example.com/x`,
		"wget --ask-password --user bob https://files.example.com/a",
		"net user bob /delete",
		"net user Administrator /active:yes",
		"net user svc * /add",
		"net user $name $password /add",
		"sshpass -f /root/.pw ssh admin@10.0.0.5",
		"sshpass -e ssh admin@10.0.0.5",
		"htpasswd -c /etc/nginx/.htpasswd admin",               // prompts
		"htpasswd -b /etc/nginx/.htpasswd admin \"$ADMIN_PW\"", // a variable
		`mysql -e "CREATE USER 'app'@'%' IDENTIFIED BY '${APP_DB_PASSWORD}';"`,
		"CREATE USER app IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';", // a hash
		"CREATE USER app IDENTIFIED WITH caching_sha2_password AS '$A$005$abcdefghijklmnopqrst';",
		"CREATE ROLE app LOGIN ENCRYPTED PASSWORD 'md5a3556571e93b0d20722ba62be61e8c2d';",
		"ALTER ROLE app PASSWORD '{{ app_db_password }}';",
		"ALTER USER app WITH PASSWORD '<password>';",
		"CREATE USER app WITH PASSWORD 'changeme';",
		"redis-cli -u redis://:${REDIS_PASSWORD}@cache.internal:6379 ping",
		"redis-cli -u redis://cache.internal:6379 ping",
		`$env:AWS_REGION = "eu-west-1"`,
		`$env:DB_PASSWORD = (Get-SSMParameterValue -Name /app/db -WithDecryption $true).Parameters[0].Value`,
		`[Environment]::SetEnvironmentVariable("DB_PASSWORD_FILE", "C:\secrets\db.txt", "Machine")`,
		`[Environment]::SetEnvironmentVariable("PATH", "C:\tools;" + $env:PATH, "Machine")`,
		"DB_PASSWORD=arn:aws:ssm:eu-west-1:123456789012:parameter/app/db",
		"DB_PASSWORD={{resolve:secretsmanager:app/db:SecretString:password}}",
	}
	for _, c := range clean {
		if fs := d.Scan("#!/bin/bash\n"+c+"\n", "plain", []byte("k")); len(fs) != 0 {
			t.Errorf("%s: %+v, want nothing", c, fs)
		}
	}
}

// TestSecretLineIsTheValuesLine: a match spanning lines (gitleaks' curl rules start at
// "curl") is reported at the line holding the value, and two rules finding the same value
// (curl-auth-header and the generic key assignment) report it once, there.
func TestSecretLineIsTheValuesLine(t *testing.T) {
	d := detector(t)
	for _, c := range []struct {
		text string
		line int
	}{
		{"#!/bin/bash\ncurl -s \\\n  -H \"Content-Type: application/json\" \\\n  -H \"Authorization: Bearer Zq8vR2mK7xW4pL9tYb3Nc6Hd\" \\\n  https://api.example.com\n", 4},
		{"curl -fsS \\\n  -H 'X-Api-Key: Zq8vR2mK7xW4pL9tYb3Nc6Hd' \\\n  https://api.example.com\n", 2},
		{"curl -fsS \\\n  -X POST \\\n  --user deploy:" + idiomPW + " \\\n  https://nexus.example.com/x\n", 3},
	} {
		fs := d.Scan(c.text, "plain", []byte("k"))
		if len(fs) != 1 || fs[0].Line != c.line {
			t.Errorf("%q: %+v, want one finding at line %d", c.text, fs, c.line)
		}
	}
}

// TestKeylessAWSProfilesAreConfiguration: ~/.aws/config profiles that hold no key (roles,
// SSO, web identity, a credential process) are configuration, not secrets; a key in the
// same file still is.
func TestKeylessAWSProfilesAreConfiguration(t *testing.T) {
	d := detector(t)
	config := `[default]
region = eu-west-1
output = json

[profile ec2]
role_arn = arn:aws:iam::123456789012:role/app
credential_source = Ec2InstanceMetadata

[profile env]
role_arn = arn:aws:iam::123456789012:role/app
credential_source = Environment
role_session_name = app-session
duration_seconds = 3600
external_id = 6a4e1c9b

[profile chained]
role_arn = arn:aws:iam::123456789012:role/admin
source_profile = ec2
mfa_serial = arn:aws:iam::123456789012:mfa/ops

[profile helper]
credential_process = /opt/bin/credential-helper --profile prod --format json
[profile vault]
credential_process = aws-vault exec prod --json

[profile eks]
role_arn = arn:aws:iam::123456789012:role/eks-pod
web_identity_token_file = /var/run/secrets/eks.amazonaws.com/serviceaccount/token

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
sso_registration_scopes = sso:account:access

[profile sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = ReadOnly
region = eu-west-1
`
	if fs := d.Scan(config, "plain", []byte("k")); len(fs) != 0 {
		t.Errorf("keyless profiles: %+v, want nothing", fs)
	}
	withKey := config + "\n[profile old]\naws_access_key_id = AKIAZ7QW3ER4TY5UI6OP\naws_secret_access_key = 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\n"
	if fs := d.Scan(withKey, "plain", []byte("k")); len(fs) != 1 || fs[0].Rule != "aws-access-key-pair" {
		t.Errorf("a key among keyless profiles: %+v, want the pair", fs)
	}
}
