# acode-placement probe for Windows: the same "key value" lines as probe.sh.
# The caller prepends `$Tools = @('name', ...)` (each name checked against
# ^[A-Za-z0-9._+][A-Za-z0-9._+-]{0,63}$ and single-quoted) and `$ToolsOnly = $true|$false`.
$ErrorActionPreference = 'SilentlyContinue'
$ProgressPreference = 'SilentlyContinue'
if (-not (Test-Path variable:Tools)) { $Tools = @() }
if (-not (Test-Path variable:ToolsOnly)) { $ToolsOnly = $false }

'acode-probe 1'
foreach ($tool in $Tools) {
    if (Get-Command -Name $tool -CommandType Application -ErrorAction SilentlyContinue) {
        "tool $tool 1"
    } else {
        "tool $tool 0"
    }
}
if ($ToolsOnly) { 'end'; exit 0 }

'os Windows'
"arch $env:PROCESSOR_ARCHITECTURE"
"cpu $([Environment]::ProcessorCount)"
$system = Get-CimInstance -ClassName Win32_ComputerSystem
"mem_bytes $($system.TotalPhysicalMemory)"
$drive = (Get-Location).Drive
if ($drive) { "disk_bytes $((Get-PSDrive -Name $drive.Name).Free)" }
if (Get-NetRoute -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue) { 'route 1' }
elseif (Get-NetRoute -DestinationPrefix '::/0' -ErrorAction SilentlyContinue) { 'route 1' }
else { 'route 0' }

if (Get-Command -Name nvidia-smi -CommandType Application -ErrorAction SilentlyContinue) {
    'nvidia-smi-begin'
    & nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader,nounits 2>&1
    "nvidia-smi-end $LASTEXITCODE"
}
'end'
