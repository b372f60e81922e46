# ec2sec uninstall script for AWS Systems Manager Distributor (Windows).
# Exit 0 is success. Idempotent: with nothing installed it succeeds. The config in
# %ProgramData%\ec2sec is kept (Distributor upgrades uninstall the old version first).
$ErrorActionPreference = 'Stop'
try {
    $dir = Join-Path $env:ProgramFiles 'ec2sec'
    $exe = Join-Path $dir 'ec2sec.exe'
    if (Test-Path -LiteralPath $exe) {
        # `service uninstall` stops the service first and succeeds when it is not installed.
        & $exe service uninstall
        if ($LASTEXITCODE -ne 0) { throw "ec2sec service uninstall exited $LASTEXITCODE" }
        Remove-Item -Force -Recurse -LiteralPath $dir
        Write-Output "ec2sec uninstall: removed $dir"
    } else {
        Write-Output "ec2sec uninstall: ec2sec is not installed; nothing to do"
    }
    exit 0
} catch {
    Write-Error "ec2sec uninstall: $_"
    exit 1
}
