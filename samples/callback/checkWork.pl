# Runs once per finished work item: one line per item in work.log, beside this file.
use strict;
use warnings;

my $job  = $ENV{QB_JOBID};
my $work = $ENV{QB_WORKID} // '';
open(my $log, '>>', 'work.log') or die "cannot open work.log: $!";
print $log "job $job work $work $ENV{TOCK_TRIGGER}\n";
close($log);
