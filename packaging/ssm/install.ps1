# ec2sec install script for AWS Systems Manager Distributor (Windows).
# SSM runs it as SYSTEM from the unpacked package directory; exit 0 is success, any other code
# a failed install. Idempotent: a second run replaces the binary and leaves the service running.
#   binary  %ProgramFiles%\ec2sec\ec2sec.exe
#   config  %ProgramData%\ec2sec\config.yaml (kept if present)
#   service ec2sec (automatic, delayed start; restarts a minute after a failure)
$ErrorActionPreference = 'Stop'
try {
    $dir = Join-Path $env:ProgramFiles 'ec2sec'
    $exe = Join-Path $dir 'ec2sec.exe'
    $cfgDir = Join-Path $env:ProgramData 'ec2sec'

    # A running service locks its binary: stop it before replacing the file.
    $svc = Get-Service -Name 'ec2sec' -ErrorAction SilentlyContinue
    if ($svc -and $svc.Status -ne 'Stopped') {
        Stop-Service -Name 'ec2sec' -Force
        $svc.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(60))
    }
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    Copy-Item -Force -Path (Join-Path $PSScriptRoot 'ec2sec.exe') -Destination $exe

    New-Item -ItemType Directory -Force -Path $cfgDir | Out-Null
    $cfg = Join-Path $cfgDir 'config.yaml'
    # A new config takes the Security Hub mode the installer was given (the central stack's
    # association passes SSM_EC2SEC_HUB_MODE=central; docs/forwarder.md).
    $mode = $env:SSM_EC2SEC_HUB_MODE
    if (-not $mode) { $mode = $env:EC2SEC_HUB_MODE }
    if ($mode -and $mode -ne 'central' -and $mode -ne 'direct') { throw "EC2SEC_HUB_MODE '$mode': want central or direct" }
    if (-not (Test-Path -LiteralPath $cfg)) {
        Copy-Item -Path (Join-Path $PSScriptRoot 'config.yaml') -Destination $cfg
        if ($mode) {
            Add-Content -LiteralPath $cfg -Value "`n# Set by the installer (EC2SEC_HUB_MODE).`nsecurity_hub:`n  mode: $mode"
        }
    }

    # `service install` re-installs an existing service, so this is safe to repeat.
    & $exe service install
    if ($LASTEXITCODE -ne 0) { throw "ec2sec service install exited $LASTEXITCODE" }
    & $exe service start
    if ($LASTEXITCODE -ne 0) { throw "ec2sec service start exited $LASTEXITCODE" }
    Write-Output "ec2sec install: installed $exe and started the ec2sec service"
    exit 0
} catch {
    Write-Error "ec2sec install: $_"
    exit 1
}
