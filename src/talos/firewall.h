/*
 * talos/firewall: the host firewall documents of a node's machine config
 * (../shared/reference/talos/FACTS-metal.md §4): NetworkDefaultActionConfig
 * with ingress block, and one NetworkRuleConfig per service:
 *
 *	apid 50000/tcp, kube-apiserver 6443/tcp   admin_cidrs + every node
 *	trustd 50001/tcp, kubelet 10250/tcp       every node
 *	etcd 2379-2380/tcp                        control planes (on control planes)
 *	cilium-vxlan 8472/udp, cilium-health 4240/tcp   every node (cni cilium)
 *	flannel-vxlan 4789/udp                    every node (cni flannel)
 *	open-tcp / open-udp                       firewall.open_ports, from anywhere
 *
 * "Every node" is one /32 per node address of the environment.
 */
#ifndef STRATA_TALOS_FIREWALL_H
#define STRATA_TALOS_FIREWALL_H

#include <stdbool.h>

#include "config/config.h"
#include "talos/tyaml.h"

/* Always on platform vps; on proxmox when config.yml has a firewall section. */
bool talos_firewall_wanted(const struct config *cfg);

/* Append node n's firewall documents to p. */
void talos_firewall_docs(struct ydocs *p, const struct config *cfg,
			 const struct node *n);

#endif
